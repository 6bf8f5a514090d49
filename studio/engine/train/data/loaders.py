"""Reading and writing datasets: JSONL / JSON / CSV / Parquet / ``datasets`` folders → :class:`~.formats.Row`;
images and videos for training.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from studio.errors import DataError
from studio.engine.train.data.formats import DATA_EXTS, IMAGE_PLACEHOLDER, Problem, Row, RowList, VIDEO_PLACEHOLDER, normalise


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


def unused_path(path: str | os.PathLike) -> Path:
    """``path`` if no file is there yet, else the first free ``<stem>-2<suffix>``,
    ``<stem>-3<suffix>`` … beside it (``a.fixed.jsonl`` → ``a.fixed-2.jsonl``)."""
    p = Path(path)
    if not p.exists():
        return p
    stem, suffix = (p.name[: -len(".jsonl")], ".jsonl") if p.name.endswith(".jsonl") else (p.stem, p.suffix)
    n = 2
    while (p.parent / f"{stem}-{n}{suffix}").exists():
        n += 1
    return p.parent / f"{stem}-{n}{suffix}"


def save_rows(rows: list[Row], path: str | os.PathLike, *, exist_ok: bool = True) -> Path:
    """Write rows in GLM's fine-tune format (JSONL, media paths relative to ``path``'s folder).

    Args:
        rows: the rows.
        path: the output file (written to a temporary name first, then moved in place).
        exist_ok: False: never replace a file already at ``path`` (the check and the move
            are one step, a hard link, where the file system allows it).

    Raises:
        DataError: a media file outside the output folder (write next to the original
            data), or ``exist_ok`` is False and ``path`` exists.
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
    if exist_ok:
        tmp.replace(out)
        return out
    exists = DataError(f"{out.name} already exists; it was left as it is. Choose another name.")
    try:
        os.link(tmp, out)  # fails if out exists: no window between the check and the write
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise exists from None
    except OSError:  # no hard links here (some network file systems): check, then move
        if out.exists():
            tmp.unlink(missing_ok=True)
            raise exists from None
        tmp.replace(out)
        return out
    tmp.unlink(missing_ok=True)
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
