"""Progress of the phases before (and between) training steps: what runs, how far, time left.

A training run spends its first minute or two on work that is not a step — the SFT data
doctor reading every row, RL's offline grading of every prompt. Without a word the job
panel shows "running" and empty charts. :class:`PhaseProgress` makes such a phase say what
it does, how far it is, and the time left at the measured rate, in two places:

* ``progress.json`` in the run folder (the job panel's status line reads it)::

      {"phase": "grading", "label": "offline grading", "done": 432, "total": 1200,
       "unit": "prompts", "fraction": 0.36, "elapsed_s": 31.2, "eta_s": 55.4,
       "updated": 1796650000.1}

  Training's own progress (:class:`studio.engine.train.callbacks.MetricsCallback`) replaces
  it at the first step; the two never write at once.
* a log line (CLI and ``train.log``) at most every ``log_every_s`` seconds and at the end:
  ``offline grading: 432/1200 prompts (36 %) · 0:55 left``.

Only the main process of a multi-process launch writes (``studio.engine.train.distributed``);
the others count silently. Units: seconds; ``done``/``total`` in the phase's ``unit``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from studio.engine.train.metrics import METRICS_FILE, PROGRESS_FILE, write_json_atomic
from studio.engine.train.runs import format_duration

#: Phases that are not training steps (``progress.json``'s ``phase`` values besides train/done).
PHASES = ("reading", "doctor", "grading")


def stopped_message(where: str, checkpoint_step: int | None = None) -> str:
    """What a start stopped before its first step says, for a new run or a resumed one.

    ``where`` completes "stopped …"; ``checkpoint_step`` is the step of the checkpoint a
    resumed run started from (None: a new run, which trained nothing at all). A resumed
    run keeps that checkpoint and its earlier training: only this start trained nothing.

    >>> stopped_message("while loading the model")
    'stopped while loading the model, before step 1: nothing was trained; start the run again'
    >>> stopped_message("while loading the model", 2)
    'stopped while loading the model, before step 3: the run keeps its checkpoint at step 2; start it again to resume'
    """
    if checkpoint_step is None:
        return f"stopped {where}, before step 1: nothing was trained; start the run again"
    return (f"stopped {where}, before step {checkpoint_step + 1}: the run keeps its checkpoint at step "
            f"{checkpoint_step}; start it again to resume")


class StoppedBeforeTraining(Exception):
    """A stop was asked before the first step of this start (model load, data check, offline
    grading): this start trained nothing and has nothing to save. The message is a new
    run's (:func:`stopped_message`); ``where`` says where it stopped, for a resumed run's
    message (:meth:`resumed`)."""

    def __init__(self, where: str):
        super().__init__(stopped_message(where))
        self.where = where

    def resumed(self, checkpoint_step: int) -> str:
        """The message for a run resumed from its checkpoint at ``checkpoint_step``."""
        return stopped_message(self.where, checkpoint_step)


def stop_before_training(stop_flag, where: str) -> None:
    """Raise :class:`StoppedBeforeTraining` when a stop was asked, in any process of a
    launch (a collective: every process calls it at the same point).

    ``where`` completes "stopped …": ``"while loading the model"``.

    >>> stop_before_training(None, "while loading the model")
    >>> try:
    ...     stop_before_training(True, "while loading the model")
    ... except StoppedBeforeTraining as e:
    ...     print(e)
    stopped while loading the model, before step 1: nothing was trained; start the run again
    """
    if stop_flag is None:
        return
    from studio.engine.train.distributed import any_rank

    if any_rank(bool(stop_flag)):
        raise StoppedBeforeTraining(where)


@contextlib.contextmanager
def interruptible(stop_flag, where: str) -> Iterator[None]:
    """Within: a stop signal raises :class:`StoppedBeforeTraining` at once, for work with
    nothing to save or clean up that takes seconds without a point to check a flag (the
    training libraries' imports: ~7 s on a laptop, half a minute on a loaded CPU). Only for a
    :class:`~studio.engine.train.callbacks.StopFlag` in a one-process run (in a launch every
    process must stop at the same point); otherwise the flag is checked on entry only.
    """
    stop_before_training(stop_flag, where)
    if not hasattr(stop_flag, "interrupt") or int(os.environ.get("WORLD_SIZE", 1) or 1) > 1:
        yield
        return
    stop_flag.interrupt = lambda: StoppedBeforeTraining(where)
    try:
        yield
    finally:
        stop_flag.interrupt = None


#: Files a run writes before step 1 that would make a run stopped then look like one that
#: trained (a phase's progress, a step-0 evaluation's metrics and TensorBoard events).
BEFORE_TRAINING_FILES = (PROGRESS_FILE, METRICS_FILE, "tb")


def mark_stopped_before_training(run_dir: str | os.PathLike, reason: str) -> None:
    """Record in ``status.json`` that this start of the run stopped before its first step.

    A new run (no checkpoint in the folder): ``before_training`` holds the reason (the job
    panel and the Runs table say "stopped before training") and what would make it look
    like a run that trained goes (:data:`BEFORE_TRAINING_FILES`); the folder keeps its
    ``config.yaml``, ``train.log`` and the data doctor's report.

    A run with a checkpoint (a resumed run) trained before: nothing is removed — its
    checkpoints, metrics and TensorBoard events are that training's — and
    ``stopped_before_step`` (the checkpoint's step + 1) lets the job panel say that the run
    keeps its checkpoint. The folder decides, not the caller, so no caller can clear a
    resumed run's record.
    """
    import shutil

    from studio.engine.train.runs import checkpoint_step, find_last_checkpoint, write_status

    run = Path(run_dir)
    last = find_last_checkpoint(run)
    if last is not None:
        write_status(run, stopped_before_step=checkpoint_step(last) + 1)
        return
    for name in BEFORE_TRAINING_FILES:
        p = run / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    write_status(run, before_training=reason)


def phase_line(prog: dict) -> str:
    """One line for a phase's progress dict.

    >>> phase_line({"label": "offline grading", "done": 432, "total": 1200, "unit": "prompts", "eta_s": 55.4})
    'offline grading: 432/1200 prompts (36 %) · 0:55 left'
    >>> phase_line({"label": "data doctor", "done": 0, "total": 9600, "unit": "rows"})
    'data doctor: 0/9600 rows (0 %)'
    """
    done, total = int(prog.get("done") or 0), int(prog.get("total") or 0)
    parts = [f"{prog.get('label') or prog.get('phase')}: {done}/{total} {prog.get('unit', '')}".rstrip()
             + (f" ({100 * done // total} %)" if total else "")]
    if prog.get("eta_s") is not None:
        parts.append(f"{format_duration(prog['eta_s'])} left")
    return " · ".join(parts)


class PhaseProgress:
    """Counts a phase's work and reports it (``progress.json`` + a log line).

    >>> import tempfile
    >>> lines = []
    >>> p = PhaseProgress(tempfile.mkdtemp(), "doctor", "data doctor", 200, "rows", log_fn=lines.append)
    >>> p.update(100); p.finish()
    >>> lines[-1].startswith("data doctor: 200/200 rows (100 %)")
    True

    Args:
        run_dir: the run folder (``progress.json`` goes there); None: log only.
        phase: one of :data:`PHASES` (the job panel keys on it).
        label: what the line calls the phase ("offline grading").
        total: units of work in the phase (> 0).
        unit: what is counted ("prompts", "rows").
        log_fn: where the line goes (None: nowhere).
        log_every_s / write_every_s: least seconds between two log lines / file writes.
        main: whether this process writes (default: the main process of a launch).
    """

    def __init__(self, run_dir: str | os.PathLike | None, phase: str, label: str, total: int, unit: str, *,
                 log_fn: Callable[[str], None] | None = None, log_every_s: float = 10.0,
                 write_every_s: float = 1.0, main: bool | None = None):
        if main is None:
            from studio.engine.train.distributed import is_main_process

            main = is_main_process()
        self.path = Path(run_dir) / PROGRESS_FILE if run_dir is not None and main else None
        self.phase, self.label, self.total, self.unit = phase, label, max(1, int(total)), unit
        self.log_fn = log_fn if main else None
        self.log_every_s, self.write_every_s = log_every_s, write_every_s
        self.done = 0
        self._t0 = time.monotonic()
        self._last_log = self._last_write = self._t0
        self._write()

    def state(self) -> dict:
        """The progress dict (see the module doc); the ETA is from the rate so far."""
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if self.done and elapsed > 0 else None
        return {"phase": self.phase, "label": self.label, "done": self.done, "total": self.total,
                "unit": self.unit, "fraction": round(self.done / self.total, 4), "elapsed_s": round(elapsed, 2),
                "eta_s": round((self.total - self.done) / rate, 1) if rate else None,
                "updated": round(time.time(), 3)}

    def _write(self) -> None:
        if self.path is not None:
            try:
                write_json_atomic(self.path, self.state())
            except OSError:  # progress is a courtesy; a full disk shows up where data is written
                pass

    def update(self, n: int = 1) -> None:
        """``n`` more units done; writes/logs when their interval has passed."""
        self.done = min(self.total, self.done + n)
        now = time.monotonic()
        if now - self._last_write >= self.write_every_s:
            self._last_write = now
            self._write()
        if self.log_fn is not None and now - self._last_log >= self.log_every_s:
            self._last_log = now
            self.log_fn(phase_line(self.state()))

    def finish(self) -> None:
        """The phase is over: the final count is written and logged."""
        self.done = self.total
        self._write()
        if self.log_fn is not None:
            st = self.state()
            self.log_fn(phase_line({**st, "eta_s": None}) + f" in {format_duration(st['elapsed_s'])}")
