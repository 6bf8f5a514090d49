"""Decoding's share of the process: one shared slot for media decoding, and giving freed memory back.

Why: decoded media is the largest short-lived allocation a server makes for a visitor
(hundreds of MB for a big PDF or video before the budgets in :mod:`.limits`). Two things
keep a shared server's memory flat:

* :func:`decode_slot` — a process-wide semaphore every turn's decoding goes through
  (:func:`~studio.engine.infer.media.turn.prepare_turn_media`), whichever handler calls it
  (the Chat estimate, the checks before a send or a comparison, the send itself), so
  three visitors uploading at once decode one after the other, not in parallel.
* :func:`trim` — glibc keeps freed heap pages of large, short-lived buffers (Pillow's
  16 MB image blocks, NumPy frames) in its arenas, so RSS stays at the peak after a
  request ends. ``malloc_trim(0)`` returns them to the OS (glibc ≥ 2.8 trims every
  arena, not only the top of the main heap; ``man 3 malloc_trim``). A no-op elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from typing import Iterator

from studio.errors import MediaError

#: Decodes that may run at the same time in one process (all handlers together).
DECODE_SLOTS = 1
#: Seconds a decode waits for a free slot before it is refused as busy.
SLOT_WAIT_S = 120.0

_SLOTS = threading.BoundedSemaphore(DECODE_SLOTS)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim`` or None (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim() -> bool:
    """Return freed heap memory to the operating system (glibc ``malloc_trim(0)``).

    Returns:
        True when glibc released something, False when it did not or is not there.
    """
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False


@contextlib.contextmanager
def decode_slot(timeout: float = SLOT_WAIT_S) -> Iterator[None]:
    """Hold the process's media-decoding slot for a ``with`` block, then :func:`trim`.

    Raises:
        MediaError: no slot came free within ``timeout`` seconds (the server is busy
            decoding other uploads; the message says to try again).
    """
    if not _SLOTS.acquire(timeout=timeout):
        raise MediaError(f"The server has been busy decoding other uploads for {timeout:.0f} s. "
                         f"Try again in a minute.")
    try:
        yield
    finally:
        _SLOTS.release()
        trim()
