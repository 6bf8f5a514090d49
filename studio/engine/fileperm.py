"""Give saved weights the same file mode as every other file we write.

``safetensors`` writes through a private temporary file and renames it, so weight files
come out ``0600`` while configs, logs and tokenizers beside them follow the umask
(``0644`` usually). A model folder then cannot be read by a second user or a container
running as another uid. :func:`share_weights` sets the umask's mode on them.
"""

from __future__ import annotations

import os
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def default_file_mode() -> int:
    """``0o666`` less the process umask (what ``open(..., "w")`` gives a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def share_weights(folder: str | Path, recursive: bool = False) -> int:
    """chmod the weight files in ``folder`` to :func:`default_file_mode`.

    Args:
        folder: a model, adapter or checkpoint folder (missing folders are skipped).
        recursive: also the folders below (e.g. a run's ``checkpoint-N/``).

    Returns:
        How many files were changed.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    mode = default_file_mode()
    changed = 0
    for p in (root.rglob("*") if recursive else root.iterdir()):
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES and (p.stat().st_mode & 0o777) != mode:
            p.chmod(mode)
            changed += 1
    return changed
