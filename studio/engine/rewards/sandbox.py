"""Time-limited SymPy work in a worker process, safe to call from any thread.

Why a process: SymPy runs Python and C code (big integers) for as long as it likes;
``signal.alarm`` only works in the main thread (TRL, Gradio and thread pools call rewards
from others) and cannot stop C code at all. Math-Verify's own timeout uses ``signal.alarm``
and raises when called from a thread; we differ on purpose.

One worker per process (started lazily, or early by :func:`warm_up`), fed one request at
a time under a lock. A request gets ``timeout_s`` inside the worker (SIGALRM there, where
it is the main thread) and ``timeout_s + GRACE_S`` here; past that the worker is killed and
a fresh one started in the background, and the request counts as "not equal". Starting a
worker (imports of sympy, latex2sympy2_extended, math_verify) takes about a second and is
waited for at most :data:`START_TIMEOUT_S`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

GRACE_S = 0.25
START_TIMEOUT_S = 20.0
_WORKER = Path(__file__).with_name("_sympy_worker.py")


class _Client:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.pid_owner = 0
        self.ready = False
        self.kills = 0

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(_WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1, close_fds=True,
        )
        self.pid_owner = os.getpid()
        self.ready = False

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None
        self.ready = False

    def _readline(self, deadline: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                line = fd.readline()
                return line if line else None

    def _ensure(self) -> bool:
        if self.proc is None or self.proc.poll() is not None or self.pid_owner != os.getpid():
            self._start()
        if not self.ready:
            line = self._readline(time.monotonic() + START_TIMEOUT_S)
            if not line or not json.loads(line).get("ready"):
                self._kill()
                return False
            self.ready = True
        return True

    def request(self, req: dict, timeout_s: float) -> Any:
        with self.lock:
            if not self._ensure():
                return None
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({**req, "timeout": timeout_s}) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._kill()
                return None
            line = self._readline(time.monotonic() + timeout_s + GRACE_S)
            if line is None:  # stuck in C code: kill, and start the next worker now
                self.kills += 1
                self._kill()
                self._start()
                return None
            try:
                return json.loads(line).get("r")
            except ValueError:
                return None

    def close(self) -> None:
        with self.lock:
            self._kill()


_CLIENT = _Client()
atexit.register(_CLIENT.close)


def warm_up() -> bool:
    """Start the worker now (an RL run calls this at setup); True when it is ready."""
    with _CLIENT.lock:
        return _CLIENT._ensure()


def sympy_equal(pred: str, ref: str, *, rel_tol: float, timeout_s: float) -> bool | None:
    """Are two cleaned math strings equal by SymPy? ``None``: unparseable or out of time.

    Closed forms: integer references exactly, others within ``rel_tol`` (floor 1e-12);
    an infinity only equals the same infinity; anything else (symbols, sets, intervals,
    tuples) by Math-Verify's ``verify`` with the order of arguments (gold, target).
    """
    return _CLIENT.request({"op": "equal", "pred": pred, "ref": ref, "rel_tol": rel_tol}, timeout_s)


def sympy_kind(ref: str, *, timeout_s: float) -> str | None:
    """What a reference parses to: ``"number"``, ``"nonfinite"``, ``"expr"``, ``"other"``, or
    ``None`` (does not parse, or out of time)."""
    return _CLIENT.request({"op": "parse", "ref": ref}, timeout_s)


def stats() -> dict[str, int]:
    """``{"kills": n}``: workers killed for running past their limit in this process."""
    return {"kills": _CLIENT.kills}
