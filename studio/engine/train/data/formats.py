"""The rows every dataset becomes: :class:`Row`, the formats read and their normalising, media path safety,
the thinking/loss policies, the training template and the doctor's :class:`Problem` record.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from studio.errors import DataError


TRAIN_TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "templates" / "glm4v_train.jinja"
DATA_EXTS = (".jsonl", ".json", ".csv", ".parquet")
IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER = "<image>", "<video>"

#: Thinking/loss policies of the trained-token preview and of training (one switch).
POLICIES: dict[str, str] = {
    "last_thinking": "Train the last turn's thinking + answer; earlier turns keep only their answer "
                     "(thinking removed, as at inference) and carry no loss.",
    "answer_only": "Train only the last turn's <answer>…</answer>; its thinking stays in the text as "
                   "context without loss; earlier turns as above.",
    "all_turns": "Train every assistant turn as written, thinking included (multi-turn data).",
}
Policy = Literal["last_thinking", "answer_only", "all_turns"]

#: Auto-fixes the doctor can apply (see :func:`auto_fix`).
FIXES: dict[str, str] = {
    "close_answer": "append the missing </answer> to assistant turns that open <answer> but never close it",
    "add_empty_think": "turn answer-only assistant turns into <think>\\n</think><answer>…</answer>",
    "drop_answer_tags": "remove GLM-4.1V's <answer>/</answer> tags from rows for a GLM-4.6V model",
}


def train_template(family=None) -> str:
    """The training chat template text for ``family`` (None = GLM-4.1V): ``glm4v_train.jinja``,
    or ``glm46v_train.jinja`` for the GLM-4.6V format (same bytes as its chat template)."""
    from studio.engine.infer.family import GLM46V

    name = "glm46v_train.jinja" if family is not None and family.name == GLM46V else TRAIN_TEMPLATE_PATH.name
    return (TRAIN_TEMPLATE_PATH.parent / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One normalised training example.

    Attributes:
        messages: ``[{"role", "content"}]``; user content is a list of
            ``{"type": "image"}``, ``{"type": "video"}`` and ``{"type": "text", "text": str}``
            items in order; system and assistant content are plain strings.
        images: absolute paths, one per ``{"type": "image"}`` item, in order.
        videos: absolute paths, one per ``{"type": "video"}`` item, in order.
        meta: where it came from (``source``, ``line`` for JSONL, ``format``, ``vote``)
            and training hints (``image_scale`` set by :func:`plan_lengths`).
    """

    messages: list[dict]
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """The row as one JSON string (used as a dataset column)."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Row":
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))

    def where(self, n: int | None = None) -> str:
        """Human label: ``row 3 (line 3)``."""
        label = f"row {n}" if n else "row"
        if "line" in self.meta:
            label += f" (line {self.meta['line']})"
        return label


class RowList(list):
    """A list of :class:`Row` plus what loading skipped.

    Attributes:
        skipped: reason → count (e.g. ``{"vote tie": 2, "vote both_bad": 1}``).
        problems: per-line load problems (invalid JSON) when loading was lenient.
        source: the file or folder loaded.
    """

    def __init__(self, rows: Iterable[Row] = (), source: str = ""):
        super().__init__(rows)
        self.skipped: Counter = Counter()
        self.problems: list[Problem] = []
        self.source = source


# ------------------------------------------------------------------ path safety
def resolve_media(path: Any, base: Path, where: str) -> str:
    """Resolve a media path relative to ``base`` and make sure it stays inside it.

    Args:
        path: the path string from the data file (relative, or absolute inside ``base``).
        base: the data file's folder.
        where: row label for the error message.

    Returns: the absolute path (symlinks resolved).

    Raises:
        DataError: empty or non-string path, a URL, ``..`` escapes, absolute paths
            elsewhere, or a symlink pointing outside ``base``.
    """
    if not isinstance(path, str) or not path.strip():
        raise DataError(f"{where}: media path {path!r} is not a file path; give paths relative to the data file.")
    if re.match(r"^[a-z]+://", path):
        raise DataError(
            f"{where}: media path {path!r} is a URL; download the file next to the data file and "
            f"use a relative path."
        )
    root = base.resolve()
    p = Path(os.path.expanduser(path))
    full = (p if p.is_absolute() else root / p).resolve()
    if full != root and root not in full.parents:
        raise DataError(
            f"{where}: media path {path!r} points outside the data folder {root}; copy the file into "
            f"that folder and use a relative path (paths with '..', absolute paths elsewhere and "
            f"symlinks leaving the folder are refused)."
        )
    return str(full)


# ------------------------------------------------------------------ normalising
def _plain(obj: Any) -> Any:
    """numpy arrays / tuples from Parquet or datasets → plain lists and dicts."""
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        obj = obj.tolist()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _maybe_json(value: Any) -> Any:
    """CSV cells hold JSON text for list/dict columns."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _split_placeholders(text: str) -> list[dict]:
    """``"<image>What?"`` → ``[{"type": "image"}, {"type": "text", "text": "What?"}]``."""
    items: list[dict] = []
    for part in re.split(r"(<image>|<video>)", text):
        if part == IMAGE_PLACEHOLDER:
            items.append({"type": "image"})
        elif part == VIDEO_PLACEHOLDER:
            items.append({"type": "video"})
        elif part:
            items.append({"type": "text", "text": part})
    return items


def _text_of(content: Any, where: str, role: str) -> str:
    """Assistant/system content → string (lists of text items are joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and item.get("type", "text") == "text":
                parts.append(item.get("text") or "")
            elif isinstance(item, dict) and item.get("type") in ("image", "video"):
                raise DataError(f"{where}: a {role} turn contains an {item['type']}; media belong in user turns.")
        return "".join(parts)
    raise DataError(f"{where}: {role} content must be text, got {type(content).__name__}.")


def _user_items(content: Any, where: str) -> list[dict]:
    """User content (string with placeholders, or a TRL item list) → normalised items."""
    if content is None:
        return []
    if isinstance(content, str):
        return _split_placeholders(content)
    if not isinstance(content, list):
        raise DataError(f"{where}: user content must be text or a list of items, got {type(content).__name__}.")
    items: list[dict] = []
    for item in content:
        if isinstance(item, str):
            items.extend(_split_placeholders(item))
            continue
        if not isinstance(item, dict):
            raise DataError(f"{where}: user content item {item!r} is not an object.")
        kind = item.get("type") or ("image" if item.get("image") is not None else "text")
        if kind in ("image", "image_url"):
            items.append({"type": "image"})
        elif kind == "video":
            items.append({"type": "video"})
        elif kind == "text":
            if item.get("text"):
                items.extend(_split_placeholders(item["text"]))
        else:
            raise DataError(f"{where}: unsupported content item type {kind!r}; use image, video or text.")
    return items


def _messages(raw: Any, where: str) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: `messages` must be a non-empty list of {{role, content}} objects.")
    out = []
    for m in raw:
        if not isinstance(m, dict) or "role" not in m:
            raise DataError(f"{where}: every message needs a `role` and `content`.")
        role = m["role"]
        if role == "user":
            out.append({"role": "user", "content": _user_items(m.get("content"), where)})
        elif role in ("assistant", "system"):
            out.append({"role": role, "content": _text_of(m.get("content"), where, role)})
        else:
            raise DataError(f"{where}: unsupported role {role!r}; use system, user or assistant.")
    return out


def _attach_leading_media(messages: list[dict], n_images: int, n_videos: int) -> None:
    """TRL convention: with string content and an images list, media go before the first user text."""
    if not n_images and not n_videos:
        return
    has = any(i["type"] in ("image", "video") for m in messages if m["role"] == "user" for i in m["content"])
    if has:
        return
    for m in messages:
        if m["role"] == "user":
            m["content"] = [{"type": "video"}] * n_videos + [{"type": "image"}] * n_images + m["content"]
            return


def _media_list(value: Any, where: str, name: str) -> list:
    value = _maybe_json(value)
    if value is None:
        return []
    if isinstance(value, (str, dict)) or not isinstance(value, list):
        value = [value]
    return [v for v in value if v is not None]


def _materialise(obj: Any, cache: Path, where: str) -> Any:
    """Images stored inside a dataset (PIL / {"bytes": …}) → a file under ``cache``; paths pass through."""
    if isinstance(obj, str):
        return obj
    data = None
    if isinstance(obj, dict) and obj.get("bytes"):
        data = obj["bytes"]
    elif isinstance(obj, dict) and obj.get("path"):
        return obj["path"]
    elif hasattr(obj, "save"):  # PIL image
        buf = io.BytesIO()
        obj.convert("RGB").save(buf, format="PNG")
        data = buf.getvalue()
    if data is None:
        raise DataError(f"{where}: cannot read media entry {type(obj).__name__}; give file paths.")
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / (hashlib.sha1(data).hexdigest()[:16] + ".png")
    if not out.exists():
        out.write_bytes(data)
    return str(out)


def normalise(record: dict, base: Path, where: str, cache: Path | None = None) -> Row | str:
    """One raw record in any supported shape → :class:`Row`, or a skip reason string.

    Raises:
        DataError: unknown shape, bad messages, unsafe media paths (the message names the row).
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object per row, got {type(record).__name__}.")
    rec = {k: _maybe_json(v) for k, v in _plain(record).items()}
    fmt: str
    if "vote" in rec and "outputs" in rec:
        fmt = "compare_vote"
        vote = str(rec["vote"])
        if vote in ("tie", "both_bad"):
            return f"vote {vote}"
        outputs = rec["outputs"] or {}
        if vote not in ("A", "B") or vote not in outputs:
            raise DataError(f"{where}: vote {vote!r} is not A, B, tie or both_bad with a matching output.")
        media = _media_list(rec.get("media"), where, "media")
        from_video = [m for m in media if isinstance(m, str) and Path(m).suffix.lower() in _video_exts()]
        from_image = [m for m in media if m not in from_video]
        items = [{"type": "video"} for _ in from_video] + [{"type": "image"} for _ in from_image]
        prompt = rec.get("prompt") or ""
        items += _split_placeholders(prompt) if isinstance(prompt, str) else []
        messages = [{"role": "user", "content": items},
                    {"role": "assistant", "content": _text_of(outputs[vote], where, "assistant")}]
        images, videos = from_image, from_video
        meta = {"vote": vote}
    elif "messages" in rec or "conversations" in rec:
        raw = rec.get("messages", rec.get("conversations"))
        messages = _messages(raw, where)
        images = _media_list(rec.get("images", rec.get("image")), where, "images")
        videos = _media_list(rec.get("videos", rec.get("video")), where, "videos")
        trl = any(isinstance(m.get("content"), list) for m in raw if isinstance(m, dict))
        fmt = "trl_messages" if trl else "glm_finetune"
        _attach_leading_media(messages, len(images), len(videos))
        meta = {}
    elif "prompt" in rec and "completion" in rec:
        fmt = "prompt_completion"
        prompt, completion = rec["prompt"], rec["completion"]
        messages = (_messages(prompt, where) if isinstance(prompt, list)
                    else [{"role": "user", "content": _user_items(prompt, where)}])
        if isinstance(completion, list) and completion and isinstance(completion[0], dict) and "role" in completion[0]:
            messages += _messages(completion, where)
        else:
            messages.append({"role": "assistant", "content": _text_of(completion, where, "assistant")})
        images = _media_list(rec.get("images", rec.get("image")), where, "images")
        videos = _media_list(rec.get("videos", rec.get("video")), where, "videos")
        _attach_leading_media(messages, len(images), len(videos))
        meta = {}
    else:
        raise DataError(
            f"{where}: unknown row shape with keys {sorted(rec)}; expected `messages` (+ `images`), "
            f"`prompt`/`completion`, or a Compare vote row (`prompt`, `media`, `outputs`, `vote`)."
        )
    cache = cache or base / ".studio_media"
    images = [resolve_media(_materialise(p, cache, where), base, where) for p in images]
    videos = [resolve_media(_materialise(p, cache, where), base, where) for p in videos]
    meta["format"] = fmt
    return Row(messages=messages, images=images, videos=videos, meta=meta)


def _video_exts() -> tuple[str, ...]:
    try:
        from studio.engine.infer.media import VIDEO_EXTS

        return tuple(VIDEO_EXTS)
    except ImportError:
        return (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")

@dataclass
class Problem:
    """One finding of the doctor.

    Attributes:
        row: 1-based row index in the loaded list (0 for file-level problems).
        severity: ``"error"`` (the row is not trained as is) or ``"warning"``.
        check: ``json``, ``empty``, ``shape``, ``tags``, ``placeholders``, ``media``
            (images and a video together), ``files``, ``length``, ``language`` or ``repetition``.
        message: what is wrong; fix: what to do; auto_fixable: a key of :data:`FIXES` or "".
        line: JSONL line when known.
    """

    row: int
    severity: Literal["error", "warning"]
    check: str
    message: str
    fix: str = ""
    auto_fixable: str = ""
    line: int | None = None
