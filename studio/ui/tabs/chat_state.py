"""The Chat tab's per-session state and its settings helpers: rounds and history, the attachment
cache, the sampling settings and the thinking switch that follow the loaded checkpoint.
"""

from dataclasses import dataclass, field
from typing import Any

from studio.config import GenerationConfig
from studio.engine.infer import chat as engine
from studio.engine.infer import family as family_mod
from studio.engine.infer import media as media_mod
from studio.errors import InputError
from studio.ui.i18n import t, tr

#: Top of the Max new tokens slider, unless the checkpoint's own default is higher.
MAX_NEW_SLIDER = 8192


@dataclass
class Round:
    """One user message and the assistant's reply, as sent to the engine and as shown."""

    user: engine.ChatTurn
    user_msgs: list[dict]
    reply: str | None = None          # full model output (tags kept); None until done
    reply_msgs: list[dict] = field(default_factory=list)


@dataclass
class ChatState:
    """Per-browser-session conversation (kept in ``gr.State``)."""

    rounds: list[Round] = field(default_factory=list)
    media_key: tuple | None = None    # cache of the last decoded attachment set
    media: Any = None

    def history(self, upto: int | None = None) -> list[engine.ChatTurn]:
        """Engine history of rounds[:upto] (user and assistant turns)."""
        out: list[engine.ChatTurn] = []
        for r in self.rounds[:upto]:
            out.append(r.user)
            if r.reply is not None:
                out.append(engine.ChatTurn("assistant", r.reply))
        return out

    def chatbot(self) -> list[dict]:
        """Messages for the Chatbot."""
        out: list[dict] = []
        for r in self.rounds:
            out += r.user_msgs + r.reply_msgs
        return out


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
    """Decode ``files`` into a TurnMedia, reusing the last result for the same files.

    Raises:
        MediaError / InputError: the media rules (counts, mixing, corrupt files …).
    """
    key = (tuple(files), float(fps), int(max_frames))
    if state.media_key == key and state.media is not None:
        return state.media
    media = media_mod.prepare_turn_media(files, fps=float(fps), max_frames=int(max_frames))
    state.media_key, state.media = key, media
    return media


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
