"""Turn chat-engine events into HTML-safe chat messages and box overlays.

Used by the Chat tab and reusable by Compare (one :class:`TurnView` per side). Messages
are plain ``gr.Chatbot`` message dicts (``{"role", "content", "metadata"}``), so this
module works without gradio installed and is easy to test; only :func:`image_content`
touches files.

Safety: everything a model produces goes through :func:`escape` before it reaches the
Chatbot, so ``<script>``, ``<img onerror=…>`` or raw special tokens are *shown as text*,
never rendered or run. The Chatbot still renders Markdown (bold, lists, code) because
Markdown syntax survives the escaping.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from studio.engine.infer import reasoning
from studio.engine.infer.chat import AnswerDelta, Done, ForcedAnswer, Stats, ThinkingDelta
from studio.ui.i18n import tr

#: Title of the collapsible thinking block (English; shown via ``tr("render.thinking")``).
THINKING_TITLE = "Thinking"
#: Shown in the thinking block's title when the budget forced the answer (``render.truncated``).
TRUNCATED_NOTE = "thinking truncated"
#: Colours cycled over boxes (RGB), high contrast on photos.
BOX_COLOURS = [(255, 48, 48), (32, 200, 255), (255, 200, 0), (60, 220, 90), (220, 80, 255)]

# Markdown image/link syntax could make the browser fetch a URL the *model* chose
# (a tracking pixel or worse). Break the "](" so it is shown as text.
_MD_IMAGE = re.compile(r"!\[")
# C0 control characters other than tab/newline (random or broken output shows them as boxes).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape(text: str) -> str:
    """Make model-produced text safe to put in a Markdown/HTML chat bubble.

    Removes GLM control tokens (``<|user|>`` …) and HTML-escapes ``& < >`` so tags are
    shown literally; Markdown image syntax is defused (no remote fetches).

    >>> escape("<script>alert(1)</script> **ok**")
    '&lt;script&gt;alert(1)&lt;/script&gt; **ok**'
    >>> escape("4<|user|>")
    '4'
    """
    text = _CONTROL.sub("", reasoning.strip_control_tokens(text))
    text = html.escape(text, quote=False)
    return _MD_IMAGE.sub("!&#91;", text)


#: Word joiner: invisible, not read aloud, and it keeps ``<`` from opening a tag.
WORD_JOINER = "\u2060"
_ENTITY = re.compile(r"&(?=#?\w+;)")


def plain_text(text: str) -> str:
    """Make text a *user* typed safe for a chat bubble without HTML entities.

    :func:`escape` turns ``<b>`` into ``&lt;b&gt;``, which the bubble shows right but the
    Chatbot also puts, verbatim, in the message's screen-reader label and copy text
    (where it reads "ampersand l t semicolon"). Here a word joiner (U+2060) goes after
    every ``<`` and every ``&`` that could start an entity, so the
    Markdown renderer shows them as the characters they are, and a screen reader reads
    the text as typed. Control tokens and C0 controls are removed and Markdown image
    syntax is defused, as in :func:`escape`.

    >>> plain_text("Is <b>this</b> & that?") == "Is <\u2060b>this<\u2060/b> & that?"
    True
    """
    text = _CONTROL.sub("", reasoning.strip_control_tokens(text))
    text = text.replace("<", "<" + WORD_JOINER)
    text = _ENTITY.sub("&" + WORD_JOINER, text)
    return _MD_IMAGE.sub("!" + WORD_JOINER + "[", text)


def stats_line(stats: Stats) -> str:
    """One line of per-turn numbers, e.g. ``"42 tokens · 31.5 tok/s · TTFT 0.12 s"``.

    Adds ``thinking truncated`` when the budget forced the answer, ``stopped`` when the
    user pressed Stop, and what cut the reply (:func:`cut_note`) when a limit did.

    >>> stats_line(Stats(new_tokens=1, stopped=True))
    '1 token · n/a tok/s · TTFT 0.00 s · stopped'
    """
    parts = [token_counts(stats)]
    parts += [stats.rate_text, f"TTFT {stats.ttft_s:.2f} s"]
    if stats.forced_answer:
        parts.append(tr("render.truncated"))
    if stats.stopped:
        parts.append(tr("render.stopped"))
    if stats.truncated:
        parts.append(cut_note(stats))
    return " · ".join(parts)


def token_counts(stats: Stats, always: bool = False) -> str:
    """Generated tokens and, for a reply that thought, how they split, so Chat and Compare
    give one set of numbers that adds up: ``"18 tokens (10 thinking + 6 answer + 2 tags/end)"``.

    >>> token_counts(Stats(new_tokens=3, answer_tokens=3))
    '3 tokens'

    ``always``: give the split for a reply with no thinking too (Compare, where a side that
    did not think is worth seeing).
    """
    head = tr("render.token" if stats.new_tokens == 1 else "render.tokens", n=stats.new_tokens)
    if not stats.thinking_tokens and not always:
        return head
    other = max(0, stats.new_tokens - stats.thinking_tokens - stats.answer_tokens)
    return head + " " + tr("render.token_split", t=stats.thinking_tokens, a=stats.answer_tokens, o=other)


def cut_note(stats: Stats) -> str:
    """What ended a truncated reply: ``"cut at max new tokens"``, ``"cut at the context
    limit"`` (the model's window was full before the cap) or ``"cut at the answer budget"``
    (after a forced answer); "" when the reply was not cut."""
    if not stats.truncated:
        return ""
    key = {"context": "render.cut_context", "answer_budget": "render.cut_answer"}.get(stats.cut_by, "render.cut")
    return tr(key)


#: Images smaller than this (px, longer side) are enlarged before boxes are drawn in the chat.
BOX_MIN_SIDE = 448


def draw_boxes(image, boxes: list[reasoning.Box], *, labels: list[str] | None = None, min_side: int = 0):
    """Return a copy of ``image`` (PIL, any mode) with ``boxes`` drawn on it.

    Args:
        image: ``PIL.Image.Image``; not modified.
        boxes: :class:`~studio.engine.infer.reasoning.Box` on GLM's 0–1000 scale (x1, y1, x2, y2).
        labels: optional text per box (default ``"1"``, ``"2"`` …).
        min_side: an image whose *longer* side is below this (px) is first enlarged by a
            whole factor with nearest-neighbour pixels (a 112-px workshop scene ×4), so a box
            and its label stay readable in the chat; photos keep their size; 0 keeps every size.

    Returns:
        RGB ``PIL.Image.Image`` of the same size (or enlarged, see ``min_side``). Line width
        scales with the image (≥ 2 px); coordinates are clamped to the image by :meth:`Box.to_pixels`.
    """
    from PIL import Image, ImageDraw

    out = image.convert("RGB")
    if min_side and max(out.size) < min_side:
        k = -(-min_side // max(1, max(out.size)))
        out = out.resize((out.width * k, out.height * k), Image.NEAREST)
    draw = ImageDraw.Draw(out)
    w, h = out.size
    width = max(2, round(min(w, h) / 150))
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = box.to_pixels(w, h)
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour, width=width)
        label = labels[i] if labels and i < len(labels) else str(i + 1)
        tx, ty = x1 + width, max(0, y1 - 12) if y1 >= 12 else y1 + width
        bbox = draw.textbbox((tx, ty), label)
        draw.rectangle(bbox, fill=colour)
        draw.text((tx, ty), label, fill=(0, 0, 0))
    return out


#: Images drawn for the chat (boxes, a PDF's first page) are kept this long (seconds), like uploads.
RENDER_MAX_AGE_S = 6 * 3600
_last_sweep = [0.0]


def _sweep(folder: str, max_age: float = RENDER_MAX_AGE_S, every: float = 600.0) -> None:
    """Delete this module's images older than ``max_age`` in ``folder`` (at most every ``every`` s)."""
    import time

    now = time.time()
    if now - _last_sweep[0] < every:
        return
    _last_sweep[0] = now
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith("studio-boxes-") and name.endswith(".png"):
            path = os.path.join(folder, name)
            try:
                if now - os.stat(path).st_mtime > max_age:
                    os.remove(path)
            except OSError:
                continue


def image_content(image, folder: str | None = None) -> dict:
    """Save a PIL image as PNG where gradio may serve it; return ``{"path": …}`` content.

    ``folder`` defaults to ``$GRADIO_TEMP_DIR`` or the system temp folder (both are
    served by gradio). Images saved here are deleted after :data:`RENDER_MAX_AGE_S`
    (swept now and then), so a long-running server does not fill its disk.
    """
    folder = folder or os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    os.makedirs(folder, exist_ok=True)
    _sweep(folder)
    fd, path = tempfile.mkstemp(prefix="studio-boxes-", suffix=".png", dir=folder)
    os.close(fd)
    image.save(path)
    return {"path": path, "mime_type": "image/png"}


def message(role: str, content: Any, title: str | None = None, status: str | None = None) -> dict:
    """A ``gr.Chatbot`` message dict; ``title`` makes it a collapsible block."""
    msg: dict[str, Any] = {"role": role, "content": content}
    if title is not None:
        msg["metadata"] = {"title": title}
        if status is not None:
            msg["metadata"]["status"] = status
    return msg


def retitle(msgs: list[dict]) -> list[dict]:
    """``msgs`` with their Thinking titles in the request's language (after a language
    switch; the title is the only run-time text a message carries). Other messages are
    returned as they are."""
    from studio.ui.i18n import LANGS

    forms = {}
    for lang in LANGS:
        base = tr("render.thinking", lang)
        forms[base] = False
        forms[base + tr("render.truncated_paren", lang)] = True
    out = []
    for m in msgs:
        title = (m.get("metadata") or {}).get("title") if isinstance(m, dict) else None
        if title in forms:
            new = tr("render.thinking") + (tr("render.truncated_paren") if forms[title] else "")
            m = {**m, "metadata": {**m["metadata"], "title": new}}
        out.append(m)
    return out


@dataclass
class TurnView:
    """Accumulates one assistant turn's events and renders it as chat messages.

    Feed every event of :func:`studio.engine.infer.chat.stream` to :meth:`apply`, then call
    :meth:`messages` to get the (escaped) messages for the Chatbot: a collapsible
    *Thinking* block (``status`` ``"pending"`` while it streams, ``"done"`` after), the
    answer below it with the stats line, and the boxed image if the answer has boxes and
    ``image`` (the turn's first image) is set.

    Attributes:
        image: PIL image the boxes refer to (None: boxes are listed, not drawn).
        thinking, answer: raw (unescaped) text so far.
        forced: the thinking budget forced the answer.
        done: the :class:`~studio.engine.infer.chat.Done` event once it arrived.
        error: a message to show instead of / after the answer (e.g. a failed turn).
    """

    image: Any = None
    thinking: str = ""
    answer: str = ""
    forced: bool = False
    done: Done | None = None
    error: str | None = None
    _boxed_content: dict | None = field(default=None, repr=False)

    def apply(self, event) -> None:
        """Update the view with one engine event."""
        if isinstance(event, ThinkingDelta):
            self.thinking += event.text
        elif isinstance(event, AnswerDelta):
            self.answer += event.text
        elif isinstance(event, ForcedAnswer):
            self.forced = True
        elif isinstance(event, Done):
            self.done = event
            # The final parse is authoritative (streaming may hold back a partial tag).
            self.thinking, self.answer = event.parsed.thinking, event.parsed.answer
            self.forced = self.forced or event.stats.forced_answer

    @property
    def thinking_open(self) -> bool:
        """True while thinking is still streaming (no answer yet, not done)."""
        return self.done is None and not self.answer and not self.forced

    def boxes(self) -> list[reasoning.Box]:
        """Boxes of the finished answer (empty while streaming)."""
        return list(self.done.parsed.boxes) if self.done is not None else []

    def messages(self) -> list[dict]:
        """Chat messages for this turn (assistant role), escaped and ready to display."""
        out: list[dict] = []
        if self.thinking or self.forced:
            title = tr("render.thinking") + (tr("render.truncated_paren") if self.forced else "")
            status = "pending" if self.thinking_open else "done"
            body = escape(self.thinking) if self.thinking else "…"
            out.append(message("assistant", body, title=title, status=status))
        answer = escape(self.answer)
        if self.done is not None:
            line = stats_line(self.done.stats)
            answer = (answer + "\n\n" if answer else tr("render.no_answer") + "\n\n") + f"<sub>{line}</sub>"
        if self.error:
            answer = (answer + "\n\n" if answer else "") + f"{tr('render.error')} {escape(self.error)}"
        if answer:
            out.append(message("assistant", answer))
        boxes = self.boxes()
        if boxes and self.image is not None:
            if self._boxed_content is None:
                self._boxed_content = image_content(draw_boxes(self.image, boxes, min_side=BOX_MIN_SIDE))
            out.append(message("assistant", self._boxed_content))
        return out


def media_messages(media) -> list[dict]:
    """User messages for a turn's image or video files, showing what the model gets.

    A file whose name says another kind than its content (a GIF renamed ``.mp4`` is
    decoded as an image by :func:`studio.engine.infer.media.kind_of`) would make the Chatbot
    pick the player by the name and show an empty video; such a file is shown as the
    decoded image (or the video's first frame) instead.

    Args:
        media: a :class:`~studio.engine.infer.media.TurnMedia` of kind ``"image"`` or ``"video"``.
    """
    from pathlib import Path

    from studio.engine.infer.media import IMAGE_EXTS, VIDEO_EXTS

    out: list[dict] = []
    if media.kind == "image":
        for src, img in zip(media.sources, media.images):
            content = {"path": src} if Path(src).suffix.lower() in IMAGE_EXTS else image_content(img)
            out.append(message("user", content))
    elif media.kind == "video":
        for src in media.sources:
            if Path(src).suffix.lower() in VIDEO_EXTS or media.video is None:
                out.append(message("user", {"path": src}))
            else:
                from PIL import Image

                out.append(message("user", image_content(Image.fromarray(media.video.frames[0]))))
    return out


def user_messages(text: str, sources: list[str], kind: str = "none", n_pages: int = 0) -> list[dict]:
    """Chat messages for a user turn: one per attached file, then the (escaped) text.

    A PDF is shown as its file plus a note with the page count.
    """
    out = [message("user", {"path": s}) for s in sources]
    if kind == "pdf" and n_pages:
        out.append(message("user", tr("render.pdf_pages", n=n_pages) if n_pages != 1 else tr("render.pdf_page")))
    if text:
        out.append(message("user", plain_text(text)))
    return out
