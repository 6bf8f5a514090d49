"""SFT data in and out: loaders, the data doctor, the collator and the trained-token preview.

Why this module exists: most SFT pain is data that silently trains the wrong thing — an
unclosed ``</answer>``, an ``<image>`` placeholder without an image, a 4K photo whose
visual tokens get cut by ``max_length``. So every dataset goes through one door
(:func:`load_rows` → :class:`Row`), one checker (:func:`doctor`) and one batch builder
(:class:`Collator`) that both training and the trained-token preview use — the preview
shows exactly the loss mask training will use, because it *is* the training collation.

Formats read (JSONL / JSON / CSV / Parquet files, folders of them, ``datasets``
``save_to_disk`` folders, hub dataset names when a hub is reachable):

* GLM-4.1V fine-tune example: ``{"messages": [{"role": "user", "content": "<image>Q"},
  {"role": "assistant", "content": "<think>…</think><answer>…</answer>"}],
  "images": ["a.jpg"], "videos": []}``;
* TRL conversational: ``messages`` whose user content is a list of ``{"type": "image"}``
  / ``{"type": "text", "text": …}`` items, plus ``images``;
* ``prompt`` / ``completion`` (strings or message lists) plus optional ``images``;
* the Compare tab's vote file: ``{"prompt", "media": [...], "outputs": {"A", "B"},
  "vote": "A"|"B"|"tie"|"both_bad"}`` — the chosen side becomes the assistant target;
  tie / both_bad rows are skipped and counted.

Media paths resolve relative to the data file and must stay inside its folder.
Masking follows transformers' ``return_assistant_tokens_mask`` with the training template
``templates/glm4v_train.jinja`` (same bytes as the inference template, plus
``{% generation %}`` markers), as TRL's ``assistant_only_loss`` does.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from studio.engine.infer.reasoning import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    BOX_CLOSE,
    BOX_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    strip_thinking,
)
from studio.errors import DataError, MediaError

TRAIN_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "templates" / "glm4v_train.jinja"
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


# ------------------------------------------------------------------ file readers
def _read_jsonl(path: Path, problems: list | None) -> list[tuple[dict, dict]]:
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((json.loads(line), {"line": n}))
            except json.JSONDecodeError as e:
                msg = f"invalid JSON on line {n}: {e.msg} (column {e.colno})"
                if problems is None:
                    raise DataError(f"{path.name}: {msg}. Fix or delete that line.") from None
                problems.append(Problem(row=0, severity="error", check="json", message=msg,
                                        fix="fix or delete that line", line=n))
    return out


def _read_json(path: Path) -> list[tuple[dict, dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path.name}: invalid JSON on line {e.lineno}: {e.msg} (column {e.colno}).") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if "messages" in data or "prompt" in data:
            data = [data]
        elif len(lists) == 1:
            data = lists[0]
        else:
            raise DataError(f"{path.name}: expected a list of rows (or an object holding one list).")
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a list of rows.")
    return [(r, {}) for r in data]


def _read_csv(path: Path) -> list[tuple[dict, dict]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [({k: v for k, v in r.items() if v not in ("", None)}, {"line": i + 2})
                for i, r in enumerate(csv.DictReader(f))]


def _read_parquet(path: Path) -> list[tuple[dict, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for bad files
        raise DataError(f"{path.name}: not a readable Parquet file ({str(e).splitlines()[0]}).") from None
    return [(r, {}) for r in table.to_pylist()]


def _read_hf(ds: Any) -> list[tuple[dict, dict]]:
    if hasattr(ds, "keys") and not hasattr(ds, "features"):  # DatasetDict
        split = "train" if "train" in ds else next(iter(ds.keys()))
        ds = ds[split]
    return [(dict(r), {}) for r in ds]


def _records(path: Path, problems: list | None) -> list[tuple[dict, dict]]:
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty; add rows (one JSON object per line for .jsonl).")
    ext = path.suffix.lower()
    recs = {".jsonl": lambda: _read_jsonl(path, problems), ".json": lambda: _read_json(path),
            ".csv": lambda: _read_csv(path), ".parquet": lambda: _read_parquet(path)}[ext]()
    if not recs and not (problems and any(p.check == "json" for p in problems)):
        raise DataError(f"{path.name} has no rows; add at least one example.")
    return recs


def load_rows(path_or_dir: str | os.PathLike, *, lenient: bool = False) -> RowList:
    """Load a dataset file, a folder of them, a ``save_to_disk`` folder or a hub name.

    Args:
        path_or_dir: ``data.jsonl`` / ``.json`` / ``.csv`` / ``.parquet``, a folder holding
            such files (read in name order), a folder written by ``datasets.save_to_disk``,
            or a hub dataset name (``owner/name``; only when a hub is reachable).
        lenient: collect invalid JSONL lines as problems in ``RowList.problems`` and skip
            them (the doctor uses this) instead of raising.

    Returns: a :class:`RowList`; ``meta["source"]`` names the file, ``meta["line"]`` the
        JSONL line. Compare votes ``tie`` / ``both_bad`` are counted in ``skipped``.

    Raises:
        DataError: missing path, empty file, invalid JSON (with the line number), unknown
            row shape, unsafe media paths, hub name while offline.
    """
    p = Path(os.path.expanduser(str(path_or_dir)))
    out = RowList(source=str(p))
    problems = out.problems if lenient else None
    if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
        from datasets import load_from_disk

        try:
            ds = load_from_disk(str(p))
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{p} is not a readable datasets folder ({str(e).splitlines()[0]}).") from None
        files = [(p, _read_hf(ds))]
    elif p.is_dir():
        found = sorted(f for f in p.iterdir() if f.suffix.lower() in DATA_EXTS and f.is_file())
        if not found:
            raise DataError(f"Folder {p} holds no .jsonl/.json/.csv/.parquet files.")
        files = [(f, _records(f, problems)) for f in found]
    elif p.is_file():
        if p.suffix.lower() not in DATA_EXTS:
            raise DataError(f"{p.name}: unsupported file type; use .jsonl, .json, .csv or .parquet.")
        files = [(p, _records(p, problems))]
    elif re.fullmatch(r"[\w.-]+/[\w.-]+", str(path_or_dir)) and not str(path_or_dir).startswith("."):
        if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
            raise DataError(
                f"{path_or_dir!r} looks like a hub dataset, but the hub is offline here; save it with "
                f"datasets' save_to_disk on a connected machine and pass that folder."
            )
        from datasets import load_dataset

        try:
            ds = load_dataset(str(path_or_dir), split="train")
        except Exception as e:  # noqa: BLE001
            raise DataError(f"Could not load hub dataset {path_or_dir!r}: {str(e).splitlines()[0]}") from None
        cache = Path.home() / ".cache" / "glm4v-studio" / "datasets" / str(path_or_dir).replace("/", "__")
        files = [(cache, _read_hf(ds))]
        cache.mkdir(parents=True, exist_ok=True)
    else:
        raise DataError(f"Data path {str(path_or_dir)!r} does not exist; pick a .jsonl/.json/.csv/.parquet file.")
    for f, recs in files:
        base = f if f.is_dir() else f.parent
        for i, (rec, extra) in enumerate(recs, 1):
            where = f"{f.name} row {i}" + (f" (line {extra['line']})" if "line" in extra else "")
            got = normalise(rec, base, where)
            if isinstance(got, str):
                out.skipped[got] += 1
                continue
            got.meta.update(extra, source=str(f))
            out.append(got)
    if not out and not out.problems:
        reasons = ", ".join(f"{n} {k}" for k, n in out.skipped.items())
        raise DataError(f"{p.name}: no usable rows ({reasons or 'all rows skipped'}).")
    return out


def save_rows(rows: list[Row], path: str | os.PathLike) -> Path:
    """Write rows in GLM's fine-tune format (JSONL, media paths relative to ``path``'s folder).

    Raises:
        DataError: a media file outside the output folder (write next to the original data).
    """
    out = Path(path)
    base = out.parent.resolve()
    lines = []
    for n, row in enumerate(rows, 1):
        rel = []
        for m in row.images + row.videos:
            mp = Path(m).resolve()
            if base != mp and base not in mp.parents:
                raise DataError(f"row {n}: {m} is outside {base}; write the fixed file next to the original data.")
            rel.append(str(mp.relative_to(base)))
        messages = []
        for m in row.messages:
            if m["role"] == "user":
                text = "".join(IMAGE_PLACEHOLDER if i["type"] == "image" else VIDEO_PLACEHOLDER
                               if i["type"] == "video" else i["text"] for i in m["content"])
                messages.append({"role": "user", "content": text})
            else:
                messages.append({"role": m["role"], "content": m["content"]})
        rec: dict[str, Any] = {"messages": messages}
        if row.images:
            rec["images"] = rel[: len(row.images)]
        if row.videos:
            rec["videos"] = rel[len(row.images):]
        lines.append(json.dumps(rec, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


# ------------------------------------------------------------------ media loading
def load_image(path: str):
    """Decode an image with ``studio.engine.infer.media.load_image`` (RGB, size rules there).

    Raises: MediaError for missing/corrupt/unusable files.
    """
    from studio.engine.infer import media

    return media.load_image(path)


def load_video(path: str, fps: float = 2.0, max_frames: int = 32):
    """Decode a video with ``studio.engine.infer.media.load_video`` → ``VideoClip`` (frames + metadata).

    Raises: MediaError when the file is missing/corrupt or video decoding is unavailable.
    """
    from studio.engine.infer import media

    return media.load_video(path, fps=fps, max_frames=max_frames)


def _scaled(img, scale: float):
    """Resize a PIL image by ``scale`` (no-op at 1), keeping both sides ≥ 28 px."""
    if scale >= 1.0:
        return img
    w, h = img.size
    size = (max(28, int(round(w * scale))), max(28, int(round(h * scale))))
    from PIL import Image

    return img.resize(size, Image.Resampling.BICUBIC)


# ------------------------------------------------------------------ policy
def training_messages(row: Row, policy: Policy = "last_thinking", family=None) -> list[dict]:
    """Messages as the training template sees them, with per-turn ``loss`` flags.

    ``last_thinking``: earlier assistant turns are reduced to their answer
    (:func:`studio.engine.infer.reasoning.strip_thinking`, as the official demo does at
    inference) and carry no loss; the last assistant turn is trained whole.
    ``answer_only``: like that, but the last turn is trained from ``<answer>`` on.
    ``all_turns``: every assistant turn is trained as written.
    ``family`` (None = GLM-4.1V) decides how a reduced turn looks (with or without
    ``<answer>`` tags, :meth:`studio.engine.infer.family.Family.history_reply`).

    Returns a deep copy; ``row`` is not changed.
    """
    if policy not in POLICIES:
        raise DataError(f"Unknown loss policy {policy!r}; choose one of {', '.join(POLICIES)}.")
    msgs = copy.deepcopy(row.messages)
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=-1)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        if policy == "all_turns":
            m["loss"] = "all"
        elif i < last:
            m["content"] = strip_thinking(m["content"], family)
            m["loss"] = "none"
        else:
            m["loss"] = "answer" if policy == "answer_only" else "all"
    return msgs


# ------------------------------------------------------------------ collator
@dataclass
class Collator:
    """Rows → a padded training batch with ``labels`` masked to the assistant tokens.

    The same call builds training batches and the trained-token preview, so the preview
    is the training mask. Media are decoded here (PyAV video with metadata, images via
    ``media.load_image``) and scaled by ``row.meta["image_scale"]`` when the length plan
    shrank them to fit ``max_length``.

    Args:
        processor: a ``Glm4vProcessor``.
        max_length: truncate to this many tokens (None: no truncation).
        policy: see :data:`POLICIES`.
        fps, max_frames: video sampling (GLM uses fps only; frames padded to even).

    Output keys: ``input_ids`` / ``attention_mask`` / ``labels`` (B, L) int64 with
    ``labels = -100`` outside trained tokens and on padding; ``pixel_values`` /
    ``image_grid_thw`` (and the ``_videos`` twins) when media are present;
    ``mm_token_type_ids`` (B, L).
    """

    processor: Any
    max_length: int | None = None
    policy: str = "last_thinking"
    fps: float = 2.0
    max_frames: int = 32
    template: str | None = None  # None: the training template of the processor's family

    def __post_init__(self) -> None:
        if self.template is None:
            from studio.engine.infer import family

            self.template = train_template(family.of(self.processor))

    def conversation(self, row: Row) -> tuple[list[dict], list]:
        """Template messages with decoded media inside the items, plus video metadata."""
        from studio.engine.infer import family

        msgs = training_messages(row, self.policy, family.of(self.processor))
        scale = float(row.meta.get("image_scale", 1.0))
        images = iter(row.images)
        videos = iter(row.videos)
        metadata = []
        for m in msgs:
            if m["role"] != "user":
                continue
            items = []
            for item in m["content"]:
                if item["type"] == "image":
                    items.append({"type": "image", "image": _scaled(load_image(next(images)), scale)})
                elif item["type"] == "video":
                    clip = load_video(next(videos), fps=self.fps, max_frames=self.max_frames)
                    frames = clip.frames
                    if scale < 1.0:
                        import numpy as np
                        from PIL import Image

                        frames = np.stack([np.asarray(_scaled(Image.fromarray(f), scale)) for f in frames])
                    items.append({"type": "video", "video": frames})
                    metadata.append(clip.metadata)
                else:
                    items.append(dict(item))
            m["content"] = items
        return msgs, metadata

    def __call__(self, examples: list) -> dict:
        rows = [e if isinstance(e, Row) else Row.from_json(e["row"]) for e in examples]
        convs, metas = [], []
        for r in rows:
            c, md = self.conversation(r)
            convs.append(c)
            metas.extend(md)
        kwargs: dict[str, Any] = dict(padding=True, padding_side="right", add_special_tokens=False,
                                      truncation=self.max_length is not None, max_length=self.max_length)
        if metas:
            kwargs.update(video_metadata=metas, do_sample_frames=False)
        out = self.processor.apply_chat_template(
            convs, chat_template=self.template, tokenize=True, return_dict=True, return_tensors="pt",
            return_assistant_tokens_mask=True, processor_kwargs=kwargs,
        )
        labels = out["input_ids"].clone()
        labels[out["attention_mask"] == 0] = -100
        labels[out.pop("assistant_masks") == 0] = -100
        out["labels"] = labels
        return dict(out)


# ------------------------------------------------------------------ preview
def render_preview(row: Row, processor, policy: Policy = "last_thinking",
                   max_length: int | None = None) -> list[tuple[str, bool]]:
    """The rendered training text of ``row`` split into (text, trained) spans.

    Built with :class:`Collator` — the very batch training sees — then decoded token by
    token; runs of ``<|image|>`` are shown as one ``<|image|>×N`` span.

    Returns: consecutive spans whose texts concatenate to the rendered training string
        (image runs abbreviated); ``trained`` is True where the token carries loss.
    """
    batch = Collator(processor, max_length=max_length, policy=policy)([row])
    ids = batch["input_ids"][0].tolist()
    trained = (batch["labels"][0] != -100).tolist()
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<|image|>")
    spans: list[list] = []
    i = 0
    while i < len(ids):
        if ids[i] == image_id:
            j = i
            while j < len(ids) and ids[j] == image_id and trained[j] == trained[i]:
                j += 1
            text, t = f"<|image|>×{j - i}", trained[i]
            i = j
        else:
            # decode runs with the same flag together so multi-byte characters stay whole
            j = i
            while j < len(ids) and ids[j] != image_id and trained[j] == trained[i]:
                j += 1
            text, t = tok.decode(ids[i:j], skip_special_tokens=False), trained[i]
            i = j
        if spans and spans[-1][1] == t:
            spans[-1][0] += text
        else:
            spans.append([text, t])
    return [(s, bool(t)) for s, t in spans]


# ------------------------------------------------------------------ doctor
def media_mix_problem(n_images: int, n_videos: int) -> str | None:
    """Why a sample's media cannot go to GLM-4.1V together, or None when they can.

    GLM-4.1V (transformers' ``Glm4vForConditionalGeneration``) holds images *or* one video
    per sample: the image token serves both images and video frames, so a sample with both
    fails in training with "Image features and image tokens do not match" (FACTS.md).

    >>> media_mix_problem(2, 0) is None, media_mix_problem(0, 1) is None
    (True, True)
    >>> media_mix_problem(1, 1)
    'holds 1 image and 1 video; GLM-4.1V takes images or one video per sample, not both'
    >>> media_mix_problem(0, 2)
    'holds 2 videos; GLM-4.1V takes images or one video per sample'
    """
    if n_images and n_videos:
        return (f"holds {plural(n_images, 'image')} and {plural(n_videos, 'video')}; GLM-4.1V takes "
                f"images or one video per sample, not both")
    if n_videos > 1:
        return f"holds {plural(n_videos, 'video')}; GLM-4.1V takes images or one video per sample"
    return None


def plural(n: int, word: str) -> str:
    """``plural(1, "error")`` → ``"1 error"``, ``plural(2, "error")`` → ``"2 errors"``.

    >>> plural(1, "row"), plural(0, "warning"), plural(3, "error")
    ('1 row', '0 warnings', '3 errors')
    """
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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


@dataclass
class Report:
    """The doctor's result: problems and summary counts.

    Attributes:
        problems: every finding, in row order.
        rows: rows checked; visual_tokens: per-row visual token counts;
        total_tokens: per-row token counts after template and media expansion;
        plan: per-row action for ``max_length`` (``"ok"``, ``"resize"``, ``"skip"``)
            and the image scale chosen for resizing.
        skipped: load-time skips (Compare ties) by reason.
    """

    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    visual_tokens: list[int] = field(default_factory=list)
    total_tokens: list[int] = field(default_factory=list)
    plan: list[dict] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    max_length: int | None = None

    @property
    def summary(self) -> dict:
        """Counts: rows, rows_with_errors, errors, warnings, by_check, resized, skipped_long."""
        by_check = Counter(p.check for p in self.problems)
        return {
            "rows": self.rows,
            "rows_with_errors": len({p.row for p in self.problems if p.severity == "error" and p.row}),
            "errors": sum(p.severity == "error" for p in self.problems),
            "warnings": sum(p.severity == "warning" for p in self.problems),
            "by_check": dict(by_check),
            "resized": sum(1 for p in self.plan if p.get("action") == "resize"),
            "skipped_long": sum(1 for p in self.plan if p.get("action") == "skip"),
            "skipped_on_load": dict(self.skipped),
            "max_visual_tokens": max(self.visual_tokens, default=0),
            "max_tokens": max(self.total_tokens, default=0),
        }

    def error_rows(self) -> set[int]:
        """1-based rows with at least one error."""
        return {p.row for p in self.problems if p.severity == "error" and p.row}

    def table(self) -> list[list]:
        """Rows for a UI table: [row, line, severity, check, message, fix, auto-fix].

        Rows are 1-based; a file-level problem (``row`` 0, e.g. an invalid JSON line that
        never became a row) shows an empty row cell and its line.
        """
        return [[p.row or "", p.line or "", p.severity, p.check, p.message, p.fix, p.auto_fixable]
                for p in self.problems]

    def headline(self) -> str:
        """``"2 rows · 1 error in 1 row · 0 warnings"`` — counts with the right plural."""
        s = self.summary
        head = f"{plural(s['rows'], 'row')} · {plural(s['errors'], 'error')}"
        if s["rows_with_errors"]:
            head += f" in {plural(s['rows_with_errors'], 'row')}"
        return head + f" · {plural(s['warnings'], 'warning')}"

    def to_dict(self) -> dict:
        return {"summary": self.summary, "problems": [asdict(p) for p in self.problems],
                "visual_tokens": self.visual_tokens, "total_tokens": self.total_tokens,
                "plan": self.plan, "max_length": self.max_length}

    def to_markdown(self) -> str:
        """A readable report: summary line and a problem table."""
        s = self.summary
        rows, rest = self.headline().split(" · ", 1)
        lines = [f"**{rows}** · {rest} · max {s['max_tokens']} tokens ({s['max_visual_tokens']} visual)"]
        if s["resized"] or s["skipped_long"]:
            lines.append(f"Longer than max_length={self.max_length}: {s['resized']} rows get smaller images, "
                         f"{s['skipped_long']} rows are skipped.")
        if s["skipped_on_load"]:
            lines.append("Skipped while loading: " + ", ".join(f"{n} {k}" for k, n in s["skipped_on_load"].items()))
        if not self.problems:
            lines.append("No problems found.")
            return "\n\n".join(lines)
        lines.append("| row | severity | check | problem | fix |\n|---|---|---|---|---|")
        for p in self.problems:
            esc = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            row = (f"{p.row}" + (f" (line {p.line})" if p.line else "")) if p.row else \
                (f"line {p.line}" if p.line else "file")
            lines[-1] += f"\n| {row} | {p.severity} | {p.check} | {esc(p.message)} | {esc(p.fix)} |"
        return "\n\n".join(lines)


_TAG_RE = re.compile("|".join(re.escape(t) for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE,
                                                        BOX_OPEN, BOX_CLOSE)))


def check_tags(text: str, family=None) -> list[tuple[str, str, str, str]]:
    """Check one assistant turn's reasoning tags against the loaded family's format.

    Expected (GLM-4.1V, ``family`` None): ``<think>…</think><answer>…</answer>``
    (whitespace allowed between), each tag once, at most one
    ``<|begin_of_box|>…<|end_of_box|>`` inside the answer. The verdict for a turn with
    thinking is :func:`studio.engine.rewards.check_format`'s — the same judge as the RL
    reward and ``studio eval``; the checks before it only name auto-fixable shapes (missing
    ``</answer>``, answer without thinking) and text outside the tags (a warning: it is
    trained, and the reward would score such an output 0). For a family without answer
    tags (GLM-4.6V) see :func:`check_tags_no_answer`; each format flags the other's.

    Returns: list of (severity, message, fix, auto_fix_key); empty when fine.

    >>> check_tags("<think>a</think><answer>b</answer>")
    []
    >>> check_tags("<think>a</think><answer>b")[0][3]
    'close_answer'
    >>> check_tags("<think>a</think><answer>b<|user|>c</answer>")[0][1]
    'not the GLM format: control token <|user|> inside the completion'
    """
    if family is not None and not family.answer_tags:
        return check_tags_no_answer(text, family.label)
    tags = _TAG_RE.findall(text)
    counts = Counter(tags)
    out: list[tuple[str, str, str, str]] = []
    if not tags:
        return [("warning", "no <think>/<answer> tags: the model learns to answer without the format",
                 "wrap as <think>\\n</think><answer>…</answer> (auto-fix) or write the reasoning", "add_empty_think")]
    dup = [t for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE) if counts[t] > 1]
    if dup:
        out.append(("error", f"tag {dup[0]} appears {counts[dup[0]]} times", "keep one think and one answer block", ""))
    if counts[BOX_OPEN] > 1 or counts[BOX_CLOSE] > 1:
        out.append(("error", f"{max(counts[BOX_OPEN], counts[BOX_CLOSE])} boxes; at most one is allowed",
                     "keep only the final result in <|begin_of_box|>…<|end_of_box|>", ""))
    if counts[BOX_OPEN] != counts[BOX_CLOSE]:
        out.append(("error", "unbalanced <|begin_of_box|> / <|end_of_box|>", "close or remove the box", ""))
    if out:
        return out
    order = [t for t in tags if t not in (BOX_OPEN, BOX_CLOSE)]
    has_think = THINK_OPEN in counts or THINK_CLOSE in counts
    if has_think and order[:2] != [THINK_OPEN, THINK_CLOSE]:
        what = "missing </think>" if THINK_OPEN in counts and THINK_CLOSE not in counts else (
            "missing <think>" if THINK_CLOSE in counts and THINK_OPEN not in counts else "<think> tags out of order")
        return [("error", what, "write <think>reasoning</think> before <answer>", "")]
    rest = order[2:] if has_think else order
    if not rest:
        return [("error", "no <answer> after the thinking (GLM-4.6V's format: this GLM-4.1V model expects "
                 "<answer> tags)", "add <answer>…</answer> after </think>", "")]
    if rest == [ANSWER_OPEN]:
        return [("error", "missing </answer>", "close the answer with </answer> (auto-fix)", "close_answer")]
    if rest != [ANSWER_OPEN, ANSWER_CLOSE]:
        return [("error", "answer tags out of order", "write <answer>…</answer> once, after </think>", "")]
    if not text.rstrip().endswith(ANSWER_CLOSE):
        out.append(("warning", "text after </answer> is trained too (the RL reward scores this shape 0)",
                    "move it inside the answer or drop it", ""))
    i_open, i_close = text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
    if BOX_OPEN in text and not (i_open < text.find(BOX_OPEN) < text.find(BOX_CLOSE) < i_close):
        out.append(("error", "the box is outside the answer", "put <|begin_of_box|>…<|end_of_box|> inside <answer>", ""))
    if THINK_OPEN not in text:
        out.append(("warning", "answer without thinking: the model learns to skip <think>",
                    "add the reasoning, or convert to <think>\\n</think><answer>…</answer> (auto-fix)",
                    "add_empty_think"))
    if THINK_OPEN in text and text[:text.find(THINK_OPEN)].strip():
        out.append(("warning", "text before <think> is trained (the RL reward scores this shape 0)",
                    "start the turn with <think>", ""))
    if THINK_OPEN in text and not any(sev == "error" for sev, *_ in out):
        # the one format judge (RL reward, studio eval): whatever it refuses is an error here too
        from studio.engine.rewards import check_format

        fc = check_format(text)
        if not fc.ok and "outside <think>/<answer>" not in fc.reason:
            out.append(("error", f"not the GLM format: {fc.reason}",
                        "write <think>…</think><answer>…</answer> with at most one box, inside the answer", ""))
    return out


def check_tags_no_answer(text: str, label: str = "GLM-4.6V") -> list[tuple[str, str, str, str]]:
    """:func:`check_tags` for the GLM-4.5V/4.6V format: ``<think>…</think>`` then the answer.

    ``<answer>`` / ``</answer>`` are GLM-4.1V's tags: flagged as errors (the model would
    learn tags it never writes). Box rules as for GLM-4.1V, the box after ``</think>``.

    >>> check_tags_no_answer("<think>a</think>\\nb")
    []
    >>> check_tags_no_answer("<think>a</think><answer>b</answer>")[0][1]
    "GLM-4.1V's <answer> tags: GLM-4.6V answers after </think> without them"
    """
    counts = Counter(_TAG_RE.findall(text))
    out: list[tuple[str, str, str, str]] = []
    if counts[ANSWER_OPEN] or counts[ANSWER_CLOSE]:
        out.append(("error", f"GLM-4.1V's <answer> tags: {label} answers after </think> without them",
                    "remove <answer> and </answer> (keep the text)", "drop_answer_tags"))
    if counts[BOX_OPEN] > 1 or counts[BOX_CLOSE] > 1:
        out.append(("error", f"{max(counts[BOX_OPEN], counts[BOX_CLOSE])} boxes; at most one is allowed",
                    "keep only the final result in <|begin_of_box|>…<|end_of_box|>", ""))
    elif counts[BOX_OPEN] != counts[BOX_CLOSE]:
        out.append(("error", "unbalanced <|begin_of_box|> / <|end_of_box|>", "close or remove the box", ""))
    if counts[THINK_OPEN] > 1 or counts[THINK_CLOSE] > 1:
        return out + [("error", "more than one <think> block", "keep one <think>…</think> at the start", "")]
    if not counts[THINK_OPEN] and not counts[THINK_CLOSE]:
        return out + [("warning", "no <think> block: the model learns to answer without thinking",
                       "write <think>reasoning</think> before the answer (or <think></think> for thinking off)",
                       "")]
    if not counts[THINK_OPEN] or not counts[THINK_CLOSE] or text.find(THINK_OPEN) > text.find(THINK_CLOSE):
        return out + [("error", "missing or misordered <think> / </think>", "write <think>reasoning</think> "
                       "before the answer", "")]
    if text[:text.find(THINK_OPEN)].strip():
        out.append(("warning", "text before <think> is trained", "start the turn with <think>", ""))
    after = text[text.find(THINK_CLOSE) + len(THINK_CLOSE):]
    if not after.replace(ANSWER_OPEN, "").replace(ANSWER_CLOSE, "").strip():
        out.append(("error", "no answer after </think>", "write the answer after </think>", ""))
    if BOX_OPEN in text[:text.find(THINK_CLOSE)]:
        out.append(("error", "the box is inside the thinking", "put the box in the answer after </think>", ""))
    return out


def _scripts(text: str) -> Counter:
    c: Counter = Counter()
    for ch in text:
        if ch.isalpha():
            if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf":
                c["cjk"] += 1
            elif "\u3040" <= ch <= "\u30ff":
                c["kana"] += 1
            elif "\uac00" <= ch <= "\ud7af":
                c["hangul"] += 1
            elif ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
                c["latin"] += 1
            elif unicodedata.name(ch, "").startswith("CYRILLIC"):
                c["cyrillic"] += 1
            else:
                c["other"] += 1
    return c


def _main_script(c: Counter) -> str | None:
    return c.most_common(1)[0][0] if c else None


def check_language(question: str, answer: str) -> str | None:
    """Warn when an answer mixes scripts (≥ 20 % of letters each in two scripts; CJK
    characters weigh 3× since one carries a word) or answers in another script than the
    question. Returns the message or None."""
    body = _TAG_RE.sub(" ", answer)
    c = _scripts(body)
    weighted = Counter({k: v * (3 if k in ("cjk", "kana", "hangul") else 1) for k, v in c.items()})
    total = sum(weighted.values())
    if total >= 20:
        top = weighted.most_common(2)
        if len(top) == 2 and top[1][1] / total >= 0.2:
            return f"the answer mixes {top[0][0]} and {top[1][0]} script"
    q = _main_script(_scripts(question))
    a = _main_script(weighted)
    if q and a and q != a and sum(_scripts(question).values()) >= 6 and total >= 20:
        return f"the question is in {q} script but the answer in {a}"
    return None


def check_repetition(text: str) -> str | None:
    """Warn on degenerate repetition: a sentence repeated ≥ 3 times, or more than half
    of the word 4-grams being repeats (≥ 12 4-grams). Returns the message or None."""
    body = _TAG_RE.sub(" ", text)
    sentences = [s.strip().lower() for s in re.split(r"[.!?。！？\n]+", body) if len(s.strip()) >= 8]
    if sentences:
        s, n = Counter(sentences).most_common(1)[0]
        if n >= 3:
            return f"the sentence {s[:40]!r} repeats {n} times"
    words = re.findall(r"\w+", body.lower())
    if any("\u4e00" <= ch <= "\u9fff" for ch in body):
        words = [ch for ch in body if not ch.isspace()]
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    if len(grams) >= 12:
        dup = len(grams) - len(set(grams))
        if dup / len(grams) > 0.5:
            return f"{dup} of {len(grams)} word 4-grams are repeats"
    return None


def _image_tokens(processor, w: int, h: int) -> int:
    ip = processor.image_processor
    return ip.get_number_of_image_patches(h, w, {}) // (ip.merge_size ** 2)


def _video_tokens(processor, clip) -> int:
    """Tokens a ``<|video|>`` expands to (frame groups × (begin + tokens + end + timestamp))."""
    vp = processor.video_processor
    t, h, w = clip.frames.shape[0], clip.frames.shape[1], clip.frames.shape[2]
    t = t + (t % 2)
    patches = vp.get_num_of_video_patches(t, h, w, {})
    groups = t // vp.temporal_patch_size
    per_group = patches // groups // (vp.merge_size ** 2)
    fps = clip.metadata.get("fps") or 24
    idx = clip.metadata.get("frames_indices")
    idx = list(idx) if idx is not None else list(range(t))
    ts = [int(i / fps) for i in idx][::2][:groups]
    ts += [ts[-1] if ts else 0] * (groups - len(ts))
    tok = processor.tokenizer
    ts_tokens = sum(len(tok(str(s), add_special_tokens=False).input_ids) for s in ts)
    return groups * (per_group + 2) + ts_tokens - 1


def _row_lengths(row: Row, processor, sizes: list[tuple[int, int]], video_tokens: list[int],
                 policy: str, scale: float = 1.0) -> tuple[int, int, int]:
    """(total tokens, visual tokens, end index of the last visual span) for ``row``."""
    from studio.engine.infer import family

    fam = family.of(processor)
    text = processor.apply_chat_template(training_messages(row, policy, fam), chat_template=train_template(fam),
                                         tokenize=False)
    ids = processor.tokenizer(text, add_special_tokens=False).input_ids
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image|>")
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video|>")
    img_tok = [_image_tokens(processor, max(28, int(round(w * scale))) if scale < 1 else w,
                             max(28, int(round(h * scale))) if scale < 1 else h) for w, h in sizes]
    total, visual, last_end = 0, 0, 0
    it_i, it_v = iter(img_tok), iter(video_tokens)
    for tid in ids:
        if tid == image_id:
            n = next(it_i, 1)
        elif tid == video_id:
            n = next(it_v, 1) + 1
        else:
            total += 1
            continue
        total += n
        visual += n
        last_end = total
    return total, visual, last_end


def doctor(rows: list[Row], processor=None, max_length: int | None = 2048, *,
           policy: str = "last_thinking", oversize: str = "resize", decode: bool = True,
           fps: float = 2.0, max_frames: int = 32, load_problems: list[Problem] | None = None,
           skipped: dict | None = None, family=None) -> Report:
    """Check rows before training; return a :class:`Report` with a per-row length plan.

    Checks (each a ``Problem.check`` name):
        ``shape``: no assistant turn / last turn not assistant / empty assistant text;
        ``tags``: :func:`check_tags` on every assistant turn;
        ``placeholders``: image / video items vs the ``images`` / ``videos`` lists;
        ``media``: images and a video (or two videos) in one row (:func:`media_mix_problem`);
        ``files``: every media file exists and decodes (``media.load_image`` /
        ``load_video``; ``decode=False`` only checks existence);
        ``length``: visual tokens per row with the processor's smart_resize math (no
        model run) and whether the row fits ``max_length`` without cutting an image span.
        ``oversize="resize"`` plans a smaller image scale (warning), ``"skip"`` drops
        the row (warning); a row that fits no scale is skipped;
        ``language`` / ``repetition``: warnings from :func:`check_language` and
        :func:`check_repetition`.

    Args:
        rows: loaded rows; processor: the model's processor (None skips ``length``).
        load_problems / skipped: carried over from :func:`load_rows` (lenient).
        family: whose tags ``tags`` expects (:mod:`studio.engine.infer.family`); None = the
            processor's family, else GLM-4.1V's.

    Returns: the report; ``report.plan[i]`` is ``{"action": "ok"|"resize"|"skip"|"error",
        "scale": float, "tokens": int}`` for row i+1.
    """
    from studio.engine.infer import family as family_mod

    fam = family or (family_mod.of(processor) if processor is not None else family_mod.DEFAULT)
    rep = Report(rows=len(rows), max_length=max_length, skipped=dict(skipped or {}))
    rep.problems.extend(load_problems or [])
    add = lambda n, sev, check, msg, fix="", af="", row=None: rep.problems.append(  # noqa: E731
        Problem(n, sev, check, msg, fix, af, (row.meta.get("line") if row else None)))
    for n, row in enumerate(rows, 1):
        plan = {"action": "ok", "scale": 1.0, "tokens": 0}
        roles = [m["role"] for m in row.messages]
        if "assistant" not in roles:
            add(n, "error", "shape", "no assistant turn: nothing to train", "add the target answer", row=row)
        elif roles[-1] != "assistant":
            add(n, "warning", "shape", "the conversation ends with a user turn, which is not trained",
                "end with the assistant's answer", row=row)
        question = ""
        for m in row.messages:
            if m["role"] == "user":
                question = "".join(i.get("text", "") for i in m["content"])
                continue
            if m["role"] != "assistant":
                continue
            if not m["content"].strip():
                add(n, "error", "shape", "empty assistant turn", "write the answer or drop the row", row=row)
                continue
            for sev, msg, fix, af in check_tags(m["content"], fam):
                add(n, sev, "tags", msg, fix, af, row=row)
            if msg := check_language(question, m["content"]):
                add(n, "warning", "language", msg, "answer in the question's language", row=row)
            if msg := check_repetition(m["content"]):
                add(n, "warning", "repetition", msg, "remove the repeated text", row=row)
        n_img = sum(i["type"] == "image" for m in row.messages if m["role"] == "user" for i in m["content"])
        n_vid = sum(i["type"] == "video" for m in row.messages if m["role"] == "user" for i in m["content"])
        media_ok = True
        if n_img != len(row.images):
            media_ok = False
            add(n, "error", "placeholders", f"{n_img} <image> placeholders but {len(row.images)} images listed",
                "make the number of <image> tags equal to the images list", row=row)
        if n_vid != len(row.videos):
            media_ok = False
            add(n, "error", "placeholders", f"{n_vid} <video> placeholders but {len(row.videos)} videos listed",
                "make the number of <video> tags equal to the videos list", row=row)
        if msg := media_mix_problem(max(len(row.images), n_img), max(len(row.videos), n_vid)):
            media_ok = False
            add(n, "error", "media", msg, "split the row: one with the images, one with the video", row=row)
        sizes: list[tuple[int, int]] = []
        vtok: list[int] = []
        for path in row.images:
            if not Path(path).is_file():
                media_ok = False
                add(n, "error", "files", f"image {Path(path).name} is missing", f"put the file at {path}", row=row)
                continue
            if decode:
                try:
                    sizes.append(load_image(path).size)
                except MediaError as e:
                    media_ok = False
                    add(n, "error", "files", f"image {Path(path).name} cannot be used: {e}",
                        "replace the file or drop the row", row=row)
            else:
                from PIL import Image

                with Image.open(path) as im:
                    sizes.append(im.size)
        for path in row.videos:
            if not Path(path).is_file():
                media_ok = False
                add(n, "error", "files", f"video {Path(path).name} is missing", f"put the file at {path}", row=row)
                continue
            try:
                clip = load_video(path, fps=fps, max_frames=max_frames)
                if processor is not None:
                    vtok.append(_video_tokens(processor, clip))
            except MediaError as e:
                media_ok = False
                add(n, "error", "files", f"video {Path(path).name} cannot be decoded: {e}",
                    "convert it to MP4 (H.264) or drop the row", row=row)
        if processor is not None and media_ok and "assistant" in roles:
            total, visual, last_end = _row_lengths(row, processor, sizes, vtok, policy)
            rep.visual_tokens.append(visual)
            rep.total_tokens.append(total)
            plan["tokens"] = total
            if max_length and total > max_length:
                if last_end > max_length or visual and total - visual >= max_length:
                    if oversize == "resize" and sizes and not row.videos:
                        scale = _fit_scale(row, processor, sizes, vtok, policy, max_length)
                        if scale:
                            plan.update(action="resize", scale=scale,
                                        tokens=_row_lengths(row, processor, sizes, vtok, policy, scale)[0])
                            add(n, "warning", "length",
                                f"{total} tokens ({visual} visual) exceed max_length={max_length} and would cut "
                                f"an image span; images are shrunk to {scale:.0%} of their side length",
                                "raise max_length, lower the image pixel budget, or skip the row", row=row)
                        else:
                            plan["action"] = "skip"
                            add(n, "warning", "length",
                                f"{total} tokens exceed max_length={max_length} even with the smallest images; "
                                f"the row is skipped", "raise max_length or shorten the text", row=row)
                    else:
                        plan["action"] = "skip"
                        add(n, "warning", "length",
                            f"{total} tokens ({visual} visual) exceed max_length={max_length} and would cut a "
                            f"visual span; the row is skipped", "raise max_length or use oversize=resize", row=row)
                else:
                    add(n, "warning", "length",
                        f"{total} tokens exceed max_length={max_length}: the last {total - max_length} tokens "
                        f"(end of the answer) are cut", "raise max_length or shorten the answer", row=row)
        else:
            rep.visual_tokens.append(0)
            rep.total_tokens.append(0)
        rep.plan.append(plan)
    for n in rep.error_rows():
        if 0 < n <= len(rep.plan):
            rep.plan[n - 1]["action"] = "error"
    rep.problems.sort(key=lambda p: (p.row, 0 if p.severity == "error" else 1))
    return rep


def _fit_scale(row, processor, sizes, vtok, policy, max_length) -> float | None:
    """Largest image side scale in (0, 1] (3 % steps) at which the row fits, or None."""
    lo_total = _row_lengths(row, processor, sizes, vtok, policy, scale=1e-6)[0]
    if lo_total > max_length:
        return None
    lo, hi = 0.0, 1.0
    for _ in range(14):
        mid = (lo + hi) / 2
        if _row_lengths(row, processor, sizes, vtok, policy, scale=max(mid, 1e-6))[0] <= max_length:
            lo = mid
        else:
            hi = mid
    return max(lo, 1e-6)


def plan_rows(rows: list[Row], report: Report, *, skip_errors: bool = True) -> tuple[list[Row], dict]:
    """Apply the doctor's plan: drop error / skip rows, set ``image_scale`` on resized ones.

    Returns: (rows to train, counts ``{"kept", "resized", "skipped_long", "skipped_errors"}``).

    Raises:
        DataError: no row left to train.
    """
    kept, counts = [], Counter()
    for row, plan in zip(rows, report.plan):
        action = plan.get("action", "ok")
        if action == "error" and skip_errors:
            counts["skipped_errors"] += 1
            continue
        if action == "skip":
            counts["skipped_long"] += 1
            continue
        r = copy.deepcopy(row)
        if action == "resize":
            r.meta["image_scale"] = plan["scale"]
            counts["resized"] += 1
        kept.append(r)
    counts["kept"] = len(kept)
    if not kept:
        raise DataError(
            f"No row can be trained: {counts['skipped_errors']} rows have errors and {counts['skipped_long']} "
            f"are too long. Run `studio doctor` on the data and fix them."
        )
    return kept, dict(counts)


def auto_fix(rows: list[Row], choices: Iterable[str]) -> tuple[list[Row], int]:
    """Apply safe fixes to assistant turns; returns (new rows, number of turns changed).

    ``close_answer``: a turn that opens ``<answer>`` but never closes it gets ``</answer>``
    appended. ``add_empty_think``: ``<answer>…</answer>`` without thinking becomes
    ``<think>\\n</think><answer>…</answer>``; a turn with no tags becomes
    ``<think>\\n</think><answer>TEXT</answer>``. ``drop_answer_tags``: GLM-4.1V's answer
    tags are removed (for GLM-4.6V data). Other problems are left alone.

    Raises: DataError for an unknown choice.
    """
    choices = set(choices)
    bad = choices - set(FIXES)
    if bad:
        raise DataError(f"Unknown auto-fix {sorted(bad)[0]!r}; choose from {', '.join(FIXES)}.")
    out, changed = [], 0
    for row in rows:
        r = copy.deepcopy(row)
        for m in r.messages:
            if m["role"] != "assistant":
                continue
            before = m["content"]
            keys = {p[3] for p in check_tags(before)} | {p[3] for p in check_tags_no_answer(before)}
            text = before
            if "drop_answer_tags" in choices and "drop_answer_tags" in keys:
                text = text.replace(ANSWER_OPEN, "").replace(ANSWER_CLOSE, "")
            if "close_answer" in choices and "close_answer" in keys:
                text = text.rstrip() + ANSWER_CLOSE
            if "add_empty_think" in choices and "add_empty_think" in keys:
                if ANSWER_OPEN in text:
                    text = f"{THINK_OPEN}\n{THINK_CLOSE}" + text.lstrip()
                else:
                    text = f"{THINK_OPEN}\n{THINK_CLOSE}{ANSWER_OPEN}{text.strip()}{ANSWER_CLOSE}"
            if text != before:
                m["content"] = text
                changed += 1
        out.append(r)
    return out, changed


def diagnose(path: str | os.PathLike, processor=None, max_length: int | None = 2048, **kw) -> tuple[RowList, Report]:
    """Load leniently and run :func:`doctor`; a file that cannot load at all (empty,
    unreadable) becomes a report with one file-level error instead of an exception."""
    try:
        rows = load_rows(path, lenient=True)
    except DataError as e:
        rep = Report(rows=0, max_length=max_length)
        check = "empty" if "empty" in str(e) or "no rows" in str(e) else "json" if "JSON" in str(e) else "shape"
        rep.problems.append(Problem(0, "error", check, str(e), "fix the file and run the doctor again"))
        return RowList(source=str(path)), rep
    rep = doctor(rows, processor, max_length, load_problems=rows.problems, skipped=dict(rows.skipped), **kw)
    return rows, rep
