"""Trainer callbacks that write a run's metrics and progress, and the graceful stop.

:class:`MetricsCallback` turns transformers/TRL logs into ``metrics.jsonl`` lines (see
:mod:`studio.engine.train.metrics`) and ``progress.json``; :class:`StopFlag`,
:func:`install_graceful_stop` and :class:`StopFlagCallback` make SIGINT/SIGTERM save a
checkpoint and stop at the next step end. Both callbacks are built on first access.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from studio.engine.train.distributed import any_rank, is_distributed, is_main_process
from studio.engine.train.metrics import (METRICS_FILE, PROGRESS_FILE, RESUME_KIND, MetricsWriter, NullMetrics, _clean,
                                         write_json_atomic)

_log = logging.getLogger(__name__)

#: Trainer log keys that are kept without a ``train/`` prefix.
_PLAIN_KEYS = {"epoch"}
#: Keys of the Trainer's end-of-training log; their presence marks a ``summary`` line.
_SUMMARY_MARKERS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos"}


# --------------------------------------------------------------------------- Trainer callbacks
def map_log_keys(logs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Map one Trainer ``on_log`` dict to ``(kind, {slash_key: value})`` (rules in the module doc).

    >>> map_log_keys({"loss": 1.5, "grad_norm": 0.3, "epoch": 0.5, "rewards/format/mean": 1.0})
    ('train', {'train/loss': 1.5, 'train/grad_norm': 0.3, 'epoch': 0.5, 'rewards/format/mean': 1.0})
    >>> map_log_keys({"eval_loss": 2.0, "epoch": 1.0})
    ('eval', {'eval/loss': 2.0, 'epoch': 1.0})
    """
    if _SUMMARY_MARKERS & set(logs):
        kind = "summary"
    elif any(k.startswith("eval_") for k in logs):
        kind = "eval"
    else:
        kind = "train"
    out: dict[str, Any] = {}
    for k, v in logs.items():
        if k in _PLAIN_KEYS:
            out[k] = v
        elif "/" in k:
            out[k] = v
        elif kind == "summary":
            out[f"summary/{k}"] = v
        elif k.startswith("eval_"):
            out[f"eval/{k[5:]}"] = v
        else:
            out[f"train/{k}"] = v
    return kind, out


class _MetricsCallback:
    """Transformers/TRL ``TrainerCallback`` that mirrors ``on_log`` into ``metrics.jsonl``
    and keeps ``progress.json`` (step/max_steps, elapsed, ETA) up to date.

    Only the main process (``state.is_world_process_zero``; the others get a
    :class:`NullMetrics` writer) writes. Keys are mapped by
    :func:`map_log_keys`; ``train/tokens_per_s`` is derived from TRL's cumulative
    ``num_tokens``. ``progress.json`` is rewritten at most every ``progress_every_s``
    seconds during training and always at the start and end.

    The rate (``steps_per_s``) is measured from the end of the first step taken in this
    process, so model loading, the first step's warm-up and a step-0 evaluation do not
    make it look slow; periodic evaluations and checkpoints after that are part of it, so
    the ETA (steps left ÷ rate) includes their share. Until a second step ends, the rate
    counts from the start of training.

    Args:
        run_dir: the run folder (``metrics.jsonl`` and ``progress.json`` go there), or
        writer: an existing :class:`MetricsWriter` / :class:`NullMetrics` (then
            ``progress.json`` goes beside ``writer.path``; none for NullMetrics).
        progress_every_s: minimum seconds between two ``progress.json`` writes.
        log_fn: if given, called with :func:`progress_line` at each training log (the
            CLI's and ``train.log``'s "step 120/1400 · 1.74 steps/s · 12:17 left" line).

    Attributes:
        writer: the writer; trainers may log extra lines with it (e.g. ``kind="curriculum"``).
    """

    def __init__(self, run_dir: str | os.PathLike | None = None, *, writer: MetricsWriter | NullMetrics | None = None,
                 progress_every_s: float = 1.0, log_fn: Callable[[str], None] | None = None):
        if writer is None:
            if run_dir is None:
                raise ValueError("MetricsCallback needs run_dir or writer.")
            # one writer per run: the other processes of a multi-process launch get a null one
            # (opening the file alone may append a newline, mid-line of the main process)
            writer = MetricsWriter(Path(run_dir) / METRICS_FILE) if is_main_process() else NullMetrics()
        self.writer = writer
        if run_dir is not None:
            self.progress_path: Path | None = Path(run_dir) / PROGRESS_FILE
        elif getattr(writer, "path", None):
            self.progress_path = Path(writer.path).parent / PROGRESS_FILE
        else:
            self.progress_path = None
        self.progress_every_s = progress_every_s
        self._t0: float | None = None
        self._step0 = 0
        self._last_progress = 0.0
        self._last_tokens: tuple[float, float] | None = None  # (time, num_tokens)
        self._first_end: tuple[float, int] | None = None  # (time, step) when this process's first step ended
        self.log_fn = log_fn

    # progress ---------------------------------------------------------------------------
    def progress(self, state, phase: str = "train") -> dict:
        """The progress dict for ``state`` (see the module doc); also what gets written."""
        now = time.time()
        t0 = self._t0 if self._t0 is not None else now
        step = int(getattr(state, "global_step", 0) or 0)
        max_steps = int(getattr(state, "max_steps", 0) or 0)
        elapsed = max(0.0, now - t0)
        done_here = step - self._step0
        rate = done_here / elapsed if elapsed > 0 and done_here > 0 else None
        if self._first_end is not None and step > self._first_end[1] and now > self._first_end[0]:
            rate = (step - self._first_end[1]) / (now - self._first_end[0])
        eta = (max_steps - step) / rate if rate and max_steps >= step else None
        return {
            "step": step,
            "max_steps": max_steps,
            "epoch": _clean(getattr(state, "epoch", None)),
            "fraction": round(step / max_steps, 4) if max_steps else None,
            "elapsed_s": round(elapsed, 2),
            "eta_s": round(eta, 1) if eta is not None else (0.0 if phase == "done" else None),
            "steps_per_s": round(rate, 4) if rate else None,
            "updated": round(now, 3),
            "phase": phase,
        }

    def _write_progress(self, state, phase: str = "train", force: bool = False) -> None:
        if self.progress_path is None or not getattr(state, "is_world_process_zero", True):
            return
        now = time.time()
        if not force and now - self._last_progress < self.progress_every_s:
            return
        self._last_progress = now
        try:
            write_json_atomic(self.progress_path, self.progress(state, phase))
        except OSError as e:  # a full disk must not kill training over a progress bar
            _log.warning("could not write %s: %s", self.progress_path, e)

    # TrainerCallback hooks -----------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        """Start the clock; remember the (resumed) start step for the ETA; mark where
        training (re)starts so readers drop lines of steps past it that are redone."""
        self._t0 = time.time()
        self._step0 = int(getattr(state, "global_step", 0) or 0)
        if self._step0 > 0 and getattr(state, "is_world_process_zero", True):
            try:
                self.writer.log_dict(self._step0, {}, kind=RESUME_KIND)
            except OSError as e:
                _log.warning("could not append to metrics.jsonl: %s", e)
        self._write_progress(state, force=True)

    def on_step_end(self, args, state, control, **kwargs):
        """Refresh ``progress.json`` (throttled); the first step's end starts the rate clock."""
        if self._first_end is None:
            self._first_end = (time.time(), int(getattr(state, "global_step", 0) or 0))
        self._write_progress(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Append the mapped ``logs`` as one line at ``state.global_step``."""
        if not logs or not getattr(state, "is_world_process_zero", True):
            return
        kind, values = map_log_keys(dict(logs))
        if kind == "train" and "train/num_tokens" in values:
            now, tok = time.time(), values["train/num_tokens"]
            if isinstance(tok, (int, float)) and self._last_tokens is not None:
                t_prev, tok_prev = self._last_tokens
                if now > t_prev and tok >= tok_prev:
                    values["train/tokens_per_s"] = (tok - tok_prev) / (now - t_prev)
            if isinstance(tok, (int, float)):
                self._last_tokens = (now, tok)
        try:
            self.writer.log_dict(int(state.global_step), values, kind=kind)
        except OSError as e:  # disk full: keep training; the checkpoint save reports the real problem
            _log.warning("could not append to metrics.jsonl: %s", e)
        self._write_progress(state)
        if self.log_fn is not None and kind == "train":
            self.log_fn(progress_line(self.progress(state), values))

    def on_train_end(self, args, state, control, **kwargs):
        """Final ``progress.json`` with ``phase: "done"``."""
        self._write_progress(state, phase="done", force=True)


def rate_text(steps_per_s: float | None) -> str:
    """A training rate as people read it: ``"1.74 steps/s"``, or ``"2.3 s/step"`` below one step a second.

    >>> rate_text(1.7412), rate_text(0.43), rate_text(None)
    ('1.74 steps/s', '2.3 s/step', '')
    """
    if not steps_per_s or steps_per_s <= 0:
        return ""
    return f"{steps_per_s:.2f} steps/s" if steps_per_s >= 1 else f"{1 / steps_per_s:.1f} s/step"


def progress_line(prog: dict, values: dict | None = None) -> str:
    """One progress line from a ``progress.json`` dict and (optionally) the step's logged values.

    >>> progress_line({"step": 120, "max_steps": 1400, "steps_per_s": 1.74, "eta_s": 735.6},
    ...               {"train/loss": 0.5123})
    'step 120/1400 (9 %) · 1.74 steps/s · 12:16 left · loss 0.512'
    """
    from studio.engine.train.runs import format_duration

    step, total = prog.get("step"), prog.get("max_steps")
    parts = [f"step {step}/{total} ({100 * step / total:.0f} %)" if total else f"step {step}"]
    if rate_text(prog.get("steps_per_s")):
        parts.append(rate_text(prog.get("steps_per_s")))
    if prog.get("eta_s") is not None:
        parts.append(f"{format_duration(prog['eta_s'])} left")
    for key, name in (("train/loss", "loss"), ("train/reward", "reward")):
        v = (values or {}).get(key)
        if isinstance(v, (int, float)):
            parts.append(f"{name} {v:.3f}")
    return " · ".join(parts)


class StopFlag:
    """A thread-safe "please stop" flag set by a signal handler or by code.

    ``bool(flag)`` / :meth:`is_set` tell whether a stop was asked; ``signal_name`` says
    which signal asked (``None`` when set by code).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        #: while set (:func:`studio.engine.train.phase.interruptible`), a stop signal also raises
        #: what it returns, at once: for work with nothing to save or clean up (imports)
        self.interrupt: Callable[[], BaseException] | None = None

    def set(self, signal_name: str | None = None) -> None:
        """Ask for a stop."""
        self.signal_name = signal_name
        self._event.set()

    def is_set(self) -> bool:
        """True once a stop was asked."""
        return self._event.is_set()

    __bool__ = is_set


def install_graceful_stop(flag: StopFlag | None = None,
                          signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> StopFlag:
    """Make SIGINT/SIGTERM set ``flag`` instead of interrupting; returns the flag.

    The first signal sets the flag (a :class:`StopFlagCallback` then saves a checkpoint and
    ends training at the step end); a second signal restores the previous handlers and
    re-raises the usual way (``KeyboardInterrupt`` for SIGINT), for a process that hangs.
    Must be called from the main thread (Python's signal rule).
    """
    flag = flag or StopFlag()
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum, frame):
        if flag.is_set():
            for s, h in previous.items():
                signal.signal(s, h)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)
            return
        flag.set(signal.Signals(signum).name)
        if flag.interrupt is not None:
            raise flag.interrupt()

    for s in signals:
        signal.signal(s, handler)
    return flag


class _StopFlagCallback:
    """At the first step end after ``flag`` is set: ``control.should_save = True`` and
    ``control.should_training_stop = True`` — the Trainer saves ``checkpoint-<step>`` and
    returns normally from ``train()``, so the command can save its adapter and exit 0.

    In a multi-process launch the processes agree at every step end
    (:func:`studio.engine.train.distributed.any_rank`): a stop asked of any one stops all at the
    same step (each saving its part of the checkpoint), and sets ``flag`` in the others too,
    so every process reports the run as stopped.

    Attributes:
        stopped: True once this callback stopped training (the command then records the
            run's status as ``"stopped"``, see :func:`studio.engine.train.runs.track_run`).
        stopped_at: the global step it stopped at.
    """

    def __init__(self, flag: StopFlag):
        self.flag = flag
        self.stopped = False
        self.stopped_at: int | None = None
        self._began = False

    def on_step_begin(self, args, state, control, **kwargs):
        """A stop asked before the first step of a new run (during the step-0 evaluation,
        the dataloader's start) ends it there: nothing trained, no checkpoint-1 to save.

        Raises: :class:`~studio.engine.train.phase.StoppedBeforeTraining` (the command says so).
        """
        if self._began:
            return control
        self._began = True
        if int(getattr(state, "global_step", 0) or 0) == 0:
            from studio.engine.train.phase import stop_before_training

            stop_before_training(self.flag, "before the first step")
        return control

    def on_step_end(self, args, state, control, **kwargs):
        """Turn a set flag (on any process) into save + stop."""
        if is_distributed():
            if any_rank(self.flag.is_set()) and not self.flag.is_set():
                self.flag.set("another process")
        if self.flag.is_set():
            control.should_save = True
            control.should_training_stop = True
            if not self.stopped:
                self.stopped = True
                self.stopped_at = int(getattr(state, "global_step", 0) or 0)
        return control


# Importing transformers costs ~7 s; the reader, the writer, ``studio runs`` and the job
# wrapper must not pay it. The two callbacks are therefore built on first access
# (PEP 562 module ``__getattr__``) as subclasses of ``transformers.TrainerCallback``.
_LAZY = {"MetricsCallback": _MetricsCallback, "StopFlagCallback": _StopFlagCallback}


def __getattr__(name: str):
    if name in _LAZY:
        from transformers import TrainerCallback

        impl = _LAZY[name]
        cls = type(name, (impl, TrainerCallback), {"__doc__": impl.__doc__, "__module__": __name__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sft_callbacks(cfg, run_dir: Path, processor, clock, stop_flag, log_fn) -> list:
    """The run's own trainer callbacks: metrics.jsonl/TensorBoard, the held-out skill
    evaluation (not under fsdp/zero3: one process cannot generate with a sharded model) and Stop.

    Args: ``cfg`` an :class:`~studio.engine.train.sft.SFTRunConfig`; ``clock`` the run's
    :class:`~studio.engine.train.steptime.StepClock`; ``stop_flag`` a ``threading.Event`` or None.
    """
    from studio.engine.train import distributed
    from studio.engine.train.callbacks import MetricsCallback, StopFlagCallback  # built lazily (above)
    from studio.engine.train.sft import resolve_data_path

    metrics_cb = MetricsCallback(run_dir, log_fn=log_fn)
    cbs = [metrics_cb]
    if cfg.eval_data and distributed.strategy() in distributed.SHARDED:
        log_fn("warning: skill evaluation is off under fsdp/zero3 (one process cannot generate with a sharded "
               "model); score the result afterwards with `studio eval`")
    elif cfg.eval_data:
        from studio.engine.train.skill_eval import make_skill_callback

        cbs.append(make_skill_callback(resolve_data_path(cfg.eval_data), processor, metrics_cb.writer,
                                       every=cfg.skill_eval_steps, n=cfg.skill_eval_n, log_fn=log_fn,
                                       clock=clock))
    if stop_flag is not None:
        cbs.append(StopFlagCallback(stop_flag))
    return cbs
