"""The processes of a job: reading their command lines and finding and ending a whole tree.

A single-process job is one process group (the job wrapper's), but ``torchrun`` — which a
``studio scale`` launch runs — starts each training process in a session of its own, so a
forced stop must walk the parent/child tree to reach them. Linux ``/proc`` only (the job
system is POSIX-only already).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def cmdline(pid: int) -> list[str] | None:
    """argv of a live process from /proc, or None when it cannot be read (non-Linux)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _stats():
    """``(pid, fields)`` of every readable process: ``fields`` are /proc/<pid>/stat after the
    command name (``fields[1]`` the parent pid, ``fields[2]`` the process group); nothing on a
    system without /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        yield int(name), stat[stat.rfind(b")") + 2:].split()


def _ppids() -> dict[int, int]:
    """pid → parent pid of every process (Linux /proc scan)."""
    return {pid: int(f[1]) for pid, f in _stats() if len(f) > 1}


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children…), parents first."""
    children: dict[int, list[int]] = {}
    for p, pp in _ppids().items():
        children.setdefault(pp, []).append(p)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p, [])
    return out


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to every process below ``pid``. ``torchrun`` starts each training process
    in a session of its own, so killing the job's process group alone would leave them."""
    for p in descendants(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def become_subreaper() -> None:
    """Make orphaned descendants (a launch's processes whose launcher was killed) children of
    this wrapper, so it can still find and end them (Linux ``PR_SET_CHILD_SUBREAPER``)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER = 36
    except (OSError, AttributeError):
        pass


def group_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` (Linux /proc scan), excluding this process."""
    me = os.getpid()
    return [pid for pid, f in _stats() if pid != me and len(f) > 2 and int(f[2]) == pgid]
