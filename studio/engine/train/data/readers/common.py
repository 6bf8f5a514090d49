"""What every reader shares: the row context, the draft a reader returns, and the text/item helpers.

A reader turns one raw row of its format into a :class:`Draft`: messages in the internal
shape (user content a list of ``{"type": "image"|"video"|"text"}`` items; an image item
may carry its own reference under ``"ref"`` when the row put it inside the content, as
TRL and OpenAI-style rows do), plus the row's ``images`` / ``videos`` lists as written.
:func:`studio.engine.train.data.readers.finish` then does what is the same for all formats
(system column, audio refusal, where untagged images go, media files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import DataError
from studio.engine.train.data.media_refs import MediaCache, is_audio_ref

IMAGE_TAG, VIDEO_TAG, AUDIO_TAG = "<image>", "<video>", "<audio>"
_TAGS = re.compile(r"(<image>|<video>)")


@dataclass
class Ctx:
    """Where a row comes from.

    Attributes:
        where: label for messages (``"data.jsonl row 3 (line 3)"``).
        base: folder relative media paths resolve against; cache: embedded media go there.
        entry: the LLaMA-Factory ``dataset_info.json`` entry for this file, or None.
    """

    where: str
    base: Path
    cache: MediaCache
    entry: Any = None

    def col(self, canonical: str, default: str | None = None) -> str | None:
        """The column holding ``canonical`` (the entry's name for it, else ``default``)."""
        return self.entry.column(canonical, default) if self.entry is not None else default


@dataclass
class Draft:
    """A row read by a reader, before :func:`finish`.

    Attributes:
        messages: internal messages (see the module docstring).
        images / videos: the row's media lists as written (paths, dicts, bytes …).
        system: a system prompt held outside the messages (a ``system`` column), or None.
        meta: ``format`` (the reader's name) and anything else worth keeping.
    """

    messages: list[dict]
    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)
    system: str | None = None
    meta: dict = field(default_factory=dict)


def split_tags(text: str, where: str) -> list[dict]:
    """``"<image>What?"`` → ``[{"type": "image"}, {"type": "text", "text": "What?"}]``.

    Raises: DataError for an ``<audio>`` tag (GLM-4.1V has no audio input).
    """
    if AUDIO_TAG in text:
        raise audio_error(where, "an <audio> tag")
    items: list[dict] = []
    for part in _TAGS.split(text):
        if part == IMAGE_TAG:
            items.append({"type": "image"})
        elif part == VIDEO_TAG:
            items.append({"type": "video"})
        elif part:
            items.append({"type": "text", "text": part})
    return items


def audio_error(where: str, what: str) -> DataError:
    """The one-line refusal of a row with audio."""
    return DataError(f"{where} holds audio ({what}); GLM-4.1V reads images and video, not audio — remove the "
                     f"audio from that row or drop the row.")


def text_of(content: Any, where: str, role: str) -> str:
    """System/assistant content → one string (text items of a list are joined).

    Raises: DataError for media in a non-user turn or a content type that is not text.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        if AUDIO_TAG in content:
            raise audio_error(where, "an <audio> tag")
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and (item.get("type") or "text") == "text":
                parts.append(item.get("text") or item.get("value") or "")  # "value": LLaMA-Factory v1
            elif isinstance(item, dict):
                raise DataError(f"{where}: a {role} turn holds a {item.get('type')} item; media belong in user "
                                f"turns.")
        return "".join(parts)
    raise DataError(f"{where}: {role} content must be text, got {type(content).__name__}.")


_IMAGE_TYPES = ("image", "image_url", "input_image")
_VIDEO_TYPES = ("video", "video_url", "input_video")
_AUDIO_TYPES = ("audio", "audio_url", "input_audio")


def user_items(content: Any, where: str) -> list[dict]:
    """User content → internal items.

    Accepts a string with ``<image>`` / ``<video>`` tags, or a list of content items as
    TRL, OpenAI, transformers and LLaMA-Factory v1 write them: ``{"type": "text", "text"}``
    (or ``"value"``),
    ``{"type": "image"}`` (filled from the row's ``images`` list in order),
    ``{"type": "image", "image" | "url" | "path": ref}``, ``{"type": "image_url",
    "image_url": {"url": ref}}`` (``data:`` URLs included), and the video twins. An item
    that carries its reference keeps it under ``"ref"``.

    Raises: DataError for audio items, unknown item types, non-object items.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return split_tags(content, where)
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise DataError(f"{where}: user content must be text or a list of items, got {type(content).__name__}.")
    items: list[dict] = []
    for item in content:
        if isinstance(item, str):
            items.extend(split_tags(item, where))
            continue
        if not isinstance(item, dict):
            raise DataError(f"{where}: user content item {item!r} is not an object.")
        kind = item.get("type") or next((k for k in ("image", "video", "image_url", "text") if item.get(k)), "text")
        if kind in _AUDIO_TYPES:
            raise audio_error(where, f"a {kind} content item")
        if kind in _IMAGE_TYPES or kind in _VIDEO_TYPES:
            out = {"type": "image" if kind in _IMAGE_TYPES else "video"}
            ref = _item_ref(item, kind)
            if ref is not None:
                if is_audio_ref(ref):
                    raise audio_error(where, "an audio file in a media item")
                out["ref"] = ref
            items.append(out)
        elif kind == "text":
            text = item.get("text") or item.get("value")  # "value": LLaMA-Factory v1 items
            if text:
                items.extend(split_tags(str(text), where))
        else:
            raise DataError(f"{where}: unsupported content item type {kind!r}; use text, image (or image_url) "
                            f"or video.")
    return items


def _item_ref(item: dict, kind: str) -> Any:
    """The media reference inside a content item, or None for a bare placeholder."""
    for key in (kind, "image", "video", "url", "path", "image_url", "video_url", "value"):
        v = item.get(key)
        if isinstance(v, dict):
            if v.get("bytes") or v.get("path"):  # an embedded {"bytes", "path"} cell
                return v
            v = v.get("url")
        if isinstance(v, str):
            if v.strip():
                return v
        elif v is not None:  # bytes or a PIL image
            return v
    return None


def media_list(value: Any) -> list:
    """A row's ``images`` / ``videos`` cell → a list (a single path or dict becomes one item)."""
    if value is None:
        return []
    if isinstance(value, (str, dict, bytes)) or not isinstance(value, (list, tuple)):
        value = [value]
    return [v for v in value if v is not None and v != ""]


def row_media(rec: dict, ctx: Ctx) -> tuple[list, list]:
    """The row's ``images`` / ``videos`` (or ``image`` / ``video``, or the entry's column names).

    Raises: DataError when the row holds audio (``audios`` / ``audio`` column or an audio
    file among the media).
    """
    audio_col = ctx.col("audios", "audios")
    for key in dict.fromkeys((audio_col, "audios", "audio")):
        got = media_list(rec.get(key))
        if got:
            name = got[0] if isinstance(got[0], str) else "embedded audio"
            raise audio_error(ctx.where, f"`{key}`: {name}")
    images = media_list(rec.get(ctx.col("images", "images")) if ctx.col("images") else
                        rec.get("images", rec.get("image")))
    videos = media_list(rec.get(ctx.col("videos", "videos")) if ctx.col("videos") else
                        rec.get("videos", rec.get("video")))
    for ref in images + videos:
        if is_audio_ref(ref):
            raise audio_error(ctx.where, f"{ref}")
    return images, videos


def system_of(rec: dict, ctx: Ctx) -> str | None:
    """The row's ``system`` column (or the entry's name for it) as text, None when absent/empty."""
    value = rec.get(ctx.col("system", "system"))
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text_of(value, ctx.where, "system")


def refuse_tools(rec: dict, ctx: Ctx) -> None:
    """Rows that describe tools (``tools`` column): refused, GLM-4.1V-Thinking has no tool-call format.

    Raises: DataError naming the row.
    """
    tools = rec.get(ctx.col("tools", "tools"))
    if tools not in (None, "", "[]", []):
        raise DataError(f"{ctx.where} has a `tools` description (tool calling); GLM-4.1V-Thinking's template has "
                        f"no tool-call format — drop the tools column and the function/observation turns.")


_TOOL_ROLES = ("tool", "function", "function_call", "observation", "ipython")


def read_turns(raw: Any, ctx: Ctx, *, role_key: str = "role", content_key: str = "content",
               roles: dict | None = None, column: str = "messages") -> list[dict]:
    """A list of turns → internal messages.

    Args:
        raw: the turns as written.
        role_key / content_key: the keys of one turn (``role``/``content``, ShareGPT's
            ``from``/``value``, or a dataset_info entry's tags).
        roles: the file's role value → ``user`` / ``assistant`` / ``system`` (identity when None).
        column: the column name, for messages.

    Raises:
        DataError: not a non-empty list of objects, a turn without the role key, a tool-use
            turn (not trainable here), an unknown role (the message lists the known ones).
    """
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{ctx.where}: `{column}` must be a non-empty list of {{{role_key}, {content_key}}} objects.")
    roles = roles or {"user": "user", "assistant": "assistant", "system": "system"}
    out = []
    for m in raw:
        if not isinstance(m, dict) or role_key not in m:
            raise DataError(f"{ctx.where}: every turn of `{column}` needs `{role_key}` and `{content_key}` "
                            f"(got {sorted(m) if isinstance(m, dict) else type(m).__name__}).")
        role = roles.get(m[role_key])
        if role is None and (m[role_key] in _TOOL_ROLES or m[role_key] in (
                (ctx.entry.tags.get("observation_tag"), ctx.entry.tags.get("function_tag")) if ctx.entry else ())):
            raise DataError(f"{ctx.where}: a {m[role_key]!r} turn (tool use); GLM-4.1V-Thinking's template has no "
                            f"tool-call format — drop the tool turns or the row.")
        if role is None:
            known = ", ".join(repr(k) for k in roles)
            raise DataError(f"{ctx.where}: unknown role {m[role_key]!r} in `{column}`; this format's roles are "
                            f"{known} (custom names: a LLaMA-Factory dataset_info.json entry's tags).")
        content = m.get(content_key)
        if role == "user":
            out.append({"role": "user", "content": user_items(content, ctx.where)})
        else:
            out.append({"role": role, "content": text_of(content, ctx.where, role)})
    return out
