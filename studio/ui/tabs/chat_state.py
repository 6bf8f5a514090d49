"""The Chat tab's per-session state and its settings helpers: rounds and history (attachments
kept as file paths, decoded again per request within a memory budget), the sampling settings
and the thinking switch that follow the loaded checkpoint.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import GenerationConfig
from studio.engine.infer import chat as engine
from studio.engine.infer import family as family_mod
from studio.engine.infer import media as media_mod
from studio.errors import InputError
from studio.ui import render, zerogpu
from studio.ui.i18n import t, tr

#: Top of the Max new tokens slider, unless the checkpoint's own default is higher.
MAX_NEW_SLIDER = 8192


@dataclass
class Round:
    """One user message and the assistant's reply, as sent to the engine and as shown.

    The message's attachments are kept as file paths (``files``, with the video sampling
    they were sent with), never as decoded pixels: a session's state stays small, and
    every request decodes what it needs within the media budgets.
    """

    user: engine.ChatTurn             # the text; media is None here (see ``files``)
    user_msgs: list[dict]
    reply: str | None = None          # full model output (tags kept); None until done
    reply_msgs: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    stats: engine.Stats | None = None  # the finished reply's numbers (the stats line is redrawn from them)
    fps: float = media_mod.DEFAULT_FPS
    max_frames: int = media_mod.DEFAULT_MAX_FRAMES


@dataclass
class ChatState:
    """Per-browser-session conversation (kept in ``gr.State``): text and file paths only."""

    rounds: list[Round] = field(default_factory=list)

    def media_turns(self, extra: int = 0) -> int:
        """Rounds with attachments (+ ``extra`` about to be added)."""
        return sum(1 for r in self.rounds if r.files) + extra

    def history(self, upto: int | None = None, decoded: dict | None = None, extra: int = 0) -> list[engine.ChatTurn]:
        """Engine history of rounds[:upto] (user and assistant turns), each round's
        attachments decoded from its files (``decoded[i]``: round i's media, already
        decoded by the caller) with the round's share of the budget (:func:`turn_budget`;
        ``extra``: media turns about to be added).

        Raises:
            InputError: an earlier attachment is no longer on the server (uploads are
                deleted after a few hours).
            MediaError: what decoding raises.
        """
        decoded = decoded or {}
        budget = turn_budget(self.media_turns(extra))
        out: list[engine.ChatTurn] = []
        for i, r in enumerate(self.rounds[:upto]):
            media = decoded.get(i)
            if media is None and r.files:
                media = decode_files(r.files, r.fps, r.max_frames, budget)
            out.append(engine.ChatTurn("user", r.user.text, media))
            if r.reply is not None:
                out.append(engine.ChatTurn("assistant", r.reply))
        return out

    def missing_files(self) -> list[str]:
        """Files this conversation refers to (attachments, images shown in the chat) that
        are gone from the server: uploads and drawn images are deleted after some hours."""
        paths = [f for r in self.rounds for f in r.files]
        for r in self.rounds:
            for m in r.user_msgs + r.reply_msgs:
                c = m.get("content") if isinstance(m, dict) else None
                if isinstance(c, dict) and c.get("path"):
                    paths.append(str(c["path"]))
        return [p for p in paths if not Path(p).is_file()]

    def chatbot(self) -> list[dict]:
        """Messages for the Chatbot."""
        out: list[dict] = []
        for r in self.rounds:
            out += r.user_msgs + r.reply_msgs
        return out


def turn_budget(media_turns: int) -> int:
    """Decoded bytes each media turn of a conversation gets: the per-turn budget, shared
    out of :data:`~studio.engine.infer.media.MAX_HISTORY_BYTES` once more turns carry media."""
    k = max(1, int(media_turns))
    return min(media_mod.MAX_TURN_BYTES, media_mod.MAX_HISTORY_BYTES // k)


def decode_files(files: list[str], fps: float, max_frames: int, budget: int):
    """Decode one turn's attachments (:func:`~studio.engine.infer.media.prepare_turn_media`).

    Raises:
        InputError: a file is gone from the server (an old upload was deleted).
        MediaError / InputError: the media rules.
    """
    if any(not Path(f).is_file() for f in files):
        raise InputError(tr("chat.media_expired"))
    return media_mod.prepare_turn_media(files, fps=float(fps), max_frames=int(max_frames), budget_bytes=budget)


def _files_of(message: Any) -> list[str]:
    files = (message or {}).get("files") or [] if isinstance(message, dict) else []
    out = []
    for f in files:
        if isinstance(f, dict):
            f = f.get("path")
        if f:
            out.append(str(f))
    return out


def _text_of(message: Any) -> str:
    if isinstance(message, dict):
        return str(message.get("text") or "")
    return str(message or "")


def prepare_media(state: ChatState, files: list[str], fps: float, max_frames: int):
    """Decode ``files`` for the next message of ``state``, with that message's share of the
    conversation's media budget. Nothing is cached: the session keeps paths only.

    Raises:
        MediaError / InputError: the media rules (counts, mixing, corrupt files …).
    """
    return decode_files(files, fps, max_frames, turn_budget(state.media_turns(extra=1)))


def gen_config(temperature, top_p, top_k, repetition_penalty, max_new_tokens, thinking_budget,
               answer_budget, fps, max_frames) -> GenerationConfig:
    """The form's sampling controls as a validated GenerationConfig (ConfigError if bad)."""
    gen = GenerationConfig(
        max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p),
        top_k=int(top_k), repetition_penalty=float(repetition_penalty),
        thinking_budget=int(thinking_budget), answer_budget=int(answer_budget),
        video_fps=float(fps), max_frames=int(max_frames),
    )
    gen.validate()
    return gen


def sampling_defaults(fam: family_mod.Family | None) -> GenerationConfig:
    """Starting values of the Sampling sliders: the Studio's defaults overlaid with what the
    checkpoint's generation_config sets (:meth:`~studio.engine.infer.family.Family.generation_defaults`),
    or the Studio's defaults alone while the family is not known (``fam`` None)."""
    base = GenerationConfig()
    return base if fam is None else fam.generation_defaults(base)


def thinking_switch(fam: family_mod.Family | None) -> dict:
    """Props of the Thinking checkbox: on and enabled where the checkpoint's template has a
    switch (or the family is not known yet), on and disabled with the reason where it has
    none (GLM-4.1V: it always thinks; the thinking budget caps it)."""
    fixed = fam is not None and not fam.thinking_switch
    return {"value": True, "interactive": not fixed,
            "info": str(t("chat.thinking_fixed" if fixed else "chat.thinking_info"))}


def thinking_arg(fam: family_mod.Family, on: bool) -> bool | None:
    """The engine's ``thinking`` argument for the switch: None (the model's default, thinking)
    when on, False when off.

    Raises:
        InputError: off for a family without a switch (the page disables the switch there,
            so only API callers get this).
    """
    if on:
        return None
    if not fam.thinking_switch:
        raise InputError(tr("chat.no_switch", family=fam.label))
    return False


def follow_checkpoint(built: family_mod.Family | None, loaded: family_mod.Family) -> list:
    """Updates for the sampling sliders (temperature, top_p, top_k, repetition penalty, max
    new tokens) and the Thinking switch once the model has loaded: the loaded checkpoint's
    values where they differ from the family the page was built with (a hub id not in the
    cache then), else none, so that a change made while the model loaded is kept."""
    import gradio as gr

    same = built is not None and (built.sampling, built.thinking_switch) == (loaded.sampling, loaded.thinking_switch)
    if same:
        return [gr.skip()] * 6
    g = sampling_defaults(loaded)
    return [g.temperature, g.top_p, g.top_k, g.repetition_penalty,
            gr.update(value=g.max_new_tokens, maximum=max(MAX_NEW_SLIDER, g.max_new_tokens)),
            gr.update(**thinking_switch(loaded))]


def _user_display(text: str, media) -> list[dict]:
    """The chat messages that show a user turn: its media (a PDF as its first page and a
    note), then its text, all escaped."""
    if media is None or media.kind == "none":
        return render.user_messages(text, [])
    if media.kind == "pdf":
        first = render.image_content(media.images[0]) if media.images else None
        msgs = [render.message("user", first)] if first else []
        name = Path(media.sources[0]).name
        n = len(media.images)
        msgs.append(render.message("user", tr("chat.pdf_pages" if n != 1 else "chat.pdf_page",
                                              name=render.plain_text(name), n=n)))
        if text:
            msgs.append(render.message("user", render.plain_text(text)))
        return msgs
    msgs = render.media_messages(media)
    if media.kind == "video" and media.video is not None:
        n = media.video.frames.shape[0]
        dur = media.video.metadata.get("duration")
        note = tr("chat.frames_from", n=n, s=f"{dur:.1f}") if dur else tr("chat.frames", n=n)
        msgs.append(render.message("user", f"*({render.plain_text(Path(media.sources[0]).name)}: {note})*"))
    if text:
        msgs.append(render.message("user", render.plain_text(text)))
    return msgs


def model_status(ctx, adapter_value: str | None) -> str:
    """The one-line HTML status above the chat: the loaded model and the adapter the next
    message runs with ("Model: toy-thinking · adapter: runs/<run>/adapter"), so a picked
    or handed-over adapter shows without opening the *Model* accordion.

    Everything shown is HTML-escaped. In public mode no server path appears: the model as
    :func:`studio.ui.public.model_label` shows it, the adapter as its run folder's name
    (a value the runs-folder rules refuse: "your adapter", never the typed text).
    """
    import html
    import os

    from studio.errors import StudioError
    from studio.ui import public

    model = public.model_label(ctx, ctx.model.name_or_path)
    value = "" if adapter_value is None else str(adapter_value).strip()
    if value.lower() in public.NO_ADAPTER_VALUES:
        line = tr("chat.status_base", model=html.escape(model))
        return _status_div(line)
    if ctx.public:
        try:
            shown = public.adapter_label(public.adapter_key(ctx, public.resolve_adapter(ctx, value)))
        except StudioError:
            shown = tr("chat.your_adapter")
    else:
        folder = public.resolve_adapter(ctx, value) or value
        try:
            rel = os.path.relpath(folder)
            shown = folder if rel.startswith("..") else rel
        except ValueError:  # another drive
            shown = folder
    line = tr("chat.status_adapter", model=html.escape(model), adapter=html.escape(shown))
    return _status_div(line)


def _status_div(line: str) -> str:
    """``line`` (escaped HTML) in the status element, its plain text as the tooltip (a long
    path cut off by the one-line layout is still readable there)."""
    import html
    import re

    plain = html.unescape(re.sub(r"<[^>]+>", "", line))
    return f'<div class="chat-model-status" title="{html.escape(plain, quote=True)}">{line}</div>'


def _duration(max_new) -> int:
    try:
        return zerogpu.estimate_seconds(int(float(max_new)))
    except (TypeError, ValueError):
        return zerogpu.estimate_seconds(MAX_NEW_SLIDER)


def duration_of_send(message, st, system_, temperature_, top_p_, top_k_, rep_, max_new_, *rest, **kw) -> int:
    """ZeroGPU seconds for a send (:func:`studio.ui.zerogpu.estimate_seconds` of its max new
    tokens); called with the handler's own arguments."""
    return _duration(max_new_)


def duration_of_regenerate(st, system_, temperature_, top_p_, top_k_, rep_, max_new_, *rest, **kw) -> int:
    """ZeroGPU seconds for a regenerate (as :func:`duration_of_send`)."""
    return _duration(max_new_)
