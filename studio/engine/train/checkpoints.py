"""Checkpoint folders of a run: ``checkpoint-N`` (transformers' name), in the run folder or
one folder down (``checkpoints/checkpoint-N``); which is the last complete one, and its step.
(Re-exported by :mod:`studio.engine.train.runs`, where callers find them.)"""

from __future__ import annotations

import os
import re
from pathlib import Path

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    out = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return out
    for p in entries:
        m = _CKPT_RE.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            out.append((int(m.group(1)), p))
    return out


def checkpoint_step(checkpoint: str | os.PathLike) -> int:
    """The step N of a ``checkpoint-N`` folder.

    >>> checkpoint_step("/runs/x/checkpoints/checkpoint-12")
    12

    Raises:
        ValueError: the folder's name is not ``checkpoint-N``.
    """
    m = _CKPT_RE.match(Path(checkpoint).name)
    if not m:
        raise ValueError(f"not a checkpoint folder name: {Path(checkpoint).name!r} (expected checkpoint-N)")
    return int(m.group(1))


def find_last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The complete ``checkpoint-N`` folder with the highest N, or None.

    Looks in ``run_dir`` and in its direct sub-folders (``run_dir/checkpoints/checkpoint-N``).
    A checkpoint counts as complete only when ``trainer_state.json`` is in it: transformers
    writes that file last, so a folder from a save interrupted by a crash or a full disk
    is ignored and the previous checkpoint is used.
    """
    root = Path(run_dir)
    found = _checkpoints(root)
    try:
        subs = [p for p in root.iterdir() if p.is_dir() and not _CKPT_RE.match(p.name)]
    except OSError:
        subs = []
    for sub in subs:
        found += _checkpoints(sub)
    return max(found, key=lambda t: t[0])[1] if found else None
