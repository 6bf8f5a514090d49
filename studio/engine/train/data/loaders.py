"""Reading and writing datasets: JSONL / JSON / CSV / Parquet / ``datasets`` folders → :class:`~.formats.Row`;
images and videos for training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from studio.errors import DataError
from studio.engine.train.data.formats import IMAGE_PLACEHOLDER, Problem, Row, RowList, VIDEO_PLACEHOLDER


def load_rows(path_or_dir: str | os.PathLike | None, *, lenient: bool = False, dataset_info: str | None = None,
              dataset: str | None = None, kind=None, progress: Callable[[int, int], Any] | None = None) -> RowList:
    """Load SFT data: a file, a folder of files, a ``save_to_disk`` folder, a hub name, or a
    LLaMA-Factory ``dataset_info.json`` entry.

    Every row is read by the reader of its format (:mod:`.readers`; ``meta["format"]``
    names it, ``RowList.formats`` counts them) into the one :class:`Row` shape.

    Args:
        path_or_dir: ``data.jsonl`` / ``.json`` / ``.csv`` / ``.parquet``, a folder holding
            such files (read in name order), a ``datasets.save_to_disk`` folder, a hub
            dataset name (``owner/name``; only when a hub is reachable), or LLaMA-Factory's
            ``dataset_info.json`` / its folder (with ``dataset``). None with ``dataset_info``.
        lenient: collect per-line and per-row problems (invalid JSON, audio, untagged media
            in a multi-turn row, an unknown row shape) in ``RowList.problems`` and skip those
            rows (the doctor uses this) instead of raising on the first.
        dataset_info / dataset: a LLaMA-Factory ``dataset_info.json`` and the entry whose
            column and role names to use (:mod:`.dataset_info`).
        kind: a :class:`~.detect.Kind` that decides instead of the columns (``studio doctor
            --sft``); None: detected, and RL prompt files are refused with the command to use.
        progress: called with (rows read, rows in all sources) after every row (reading the
            16,800-row workshop recipe takes seconds to half a minute); it may raise to stop
            the reading (:class:`~studio.errors.StoppedError`).

    Returns: a :class:`RowList`; ``meta["source"]`` names the file, ``meta["line"]`` the
        JSONL line (CSV: the line of the row). Compare votes ``tie`` / ``both_bad`` are
        counted in ``skipped``.

    Raises:
        DataError: missing path, empty file, invalid JSON (with the line number), unknown
            row shape, audio, untagged images in a multi-turn row — the message names the
            row and what to change; an RL prompt file (run ``studio rl`` on it).
    """
    from studio.engine.train.data import dataset_info as lf
    from studio.engine.train.data.detect import detect_kind
    from studio.engine.train.data.media_refs import MediaCache
    from studio.engine.train.data.readers import read_sft
    from studio.engine.train.data.readers.common import Ctx
    from studio.engine.train.data.sources import open_sources

    path, entry = lf.resolve(path_or_dir, dataset_info, dataset)
    out = RowList(source=str(path))
    out.entry = entry
    problems = out.problems if lenient else None
    sources = open_sources(path, problems=problems)
    first = next((s.first() for s in sources if len(s)), {})
    out.kind = kind or detect_kind(first)
    if out.kind.kind == "rl" and entry is None:
        raise DataError(f"{Path(str(path)).name} holds RL prompts ({out.kind.reason}); train on it with "
                        f"`studio rl --data {path}` (or check it with `studio doctor --rl`).")
    total, done = sum(len(s) for s in sources), 0
    for src in sources:
        cache = MediaCache(src.base)
        for i, rec, line in src.rows():
            if progress is not None:
                progress(done, total)
                done += 1
            where = f"{src.path.name} row {i}" + (f" (line {line})" if line else "")
            try:
                got = read_sft(rec, Ctx(where, src.base, cache, entry))
            except DataError as e:
                if problems is None:
                    raise
                msg = str(e)
                check = ("media" if " audio " in msg else "placeholders" if "no <image>/<video> tag" in msg
                         else "shape")
                problems.append(Problem(row=0, severity="error", check=check, message=msg,
                                        fix="fix that row or drop it (it is not loaded)", line=line))
                continue
            if isinstance(got, str):
                out.skipped[got] += 1
                continue
            got.meta.update({"line": line} if line else {}, source=str(src.path), file_row=i)
            out.formats[got.meta["format"]] += 1
            out.append(got)
        out.media_written += cache.written
    if progress is not None:
        progress(total, total)
    if not out and not out.problems:
        reasons = ", ".join(f"{n} {k}" for k, n in out.skipped.items())
        raise DataError(f"{Path(str(path)).name}: no usable rows ({reasons or 'all rows skipped'}).")
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
    """Write rows in GLM's fine-tune format (JSONL; a system turn stays a system message).

    Media inside the output folder are written relative to it; media elsewhere keep their
    absolute path (local data may live anywhere the user can read).

    Args:
        rows: the rows.
        path: the output file (written to a temporary name first, then moved in place).
        exist_ok: False: never replace a file already at ``path`` (the check and the move
            are one step, a hard link, where the file system allows it).

    Raises:
        DataError: ``exist_ok`` is False and ``path`` exists.
    """
    out = Path(path)
    base = out.parent.resolve()
    lines = []
    for row in rows:
        rel = []
        for m in row.images + row.videos:
            mp = Path(m).resolve()
            rel.append(str(mp.relative_to(base)) if base == mp or base in mp.parents else str(mp))
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
