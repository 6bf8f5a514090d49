"""Where a training step's wall time goes: exclusive phase timers, logged as ``time/*_s`` metrics.

A :class:`StepClock` is owned by a trainer. Code that does one kind of work wraps it in
``with clock.phase("generate"):`` (``data``, ``update``, ``generate``, ``reward``,
``logprob``, ``eval``, ``save`` …). Phases are *exclusive*: a phase opened inside another
pauses the outer one, so the seconds of all phases of a step add up to at most the step's
wall time, and nothing is counted twice (the RL trainer's generation runs inside TRL's
``training_step``, which the ``update`` phase wraps).

At each optimizer step's end, :func:`make_step_time_callback`'s callback takes the phases,
measures the step's wall time (from the previous step's end, or from the start of
training for the first step) and hands ``{"time/step_s": wall, "time/<phase>_s": seconds,
…, "time/other_s": wall − Σ phases}`` to a sink — the trainers append them to their TRL
``_metrics`` so they are averaged over the logging window and written to
``metrics.jsonl`` like any other metric. ``time/other_s`` is the bookkeeping no phase
claims (callbacks, logging, the Trainer's own work).

Units: seconds (float, ``time.perf_counter``). Thread-safety: one clock per training loop,
used from its thread only.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

#: The metric key prefix of the phase timers.
PREFIX = "time/"


class StepClock:
    """Exclusive wall-clock timers for the phases of one training step.

    >>> c = StepClock()
    >>> with c.phase("update"):
    ...     with c.phase("generate"):
    ...         pass
    >>> sorted(c.take())
    ['generate', 'update']
    >>> c.take()
    {}
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._now = clock
        self._acc: dict[str, float] = {}
        self._stack: list[list] = []  # [name, start of its current running stretch]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the time inside the block as ``name`` (minus nested phases)."""
        now = self._now()
        if self._stack:
            outer = self._stack[-1]
            self._acc[outer[0]] = self._acc.get(outer[0], 0.0) + now - outer[1]
        self._stack.append([name, now])
        try:
            yield
        finally:
            end = self._now()
            _, start = self._stack.pop()
            self._acc[name] = self._acc.get(name, 0.0) + end - start
            if self._stack:
                self._stack[-1][1] = end

    def take(self) -> dict[str, float]:
        """Seconds per phase since the last call (running phases count up to now); resets."""
        now = self._now()
        if self._stack:
            top = self._stack[-1]
            self._acc[top[0]] = self._acc.get(top[0], 0.0) + now - top[1]
            top[1] = now
        out, self._acc = self._acc, {}
        return out


def step_record(wall: float, phases: dict[str, float]) -> dict[str, float]:
    """The ``time/*_s`` metrics of one step: its wall time, each phase, and the rest as ``other``.

    >>> step_record(1.0, {"update": 0.6, "data": 0.1})
    {'time/step_s': 1.0, 'time/update_s': 0.6, 'time/data_s': 0.1, 'time/other_s': 0.3}
    """
    rec = {f"{PREFIX}step_s": round(wall, 6)}
    for k, v in phases.items():
        rec[f"{PREFIX}{k}_s"] = round(v, 6)
    rec[f"{PREFIX}other_s"] = round(max(0.0, wall - sum(phases.values())), 6)
    return rec


class _StepTimeCallback:
    """Closes each optimizer step's timing at ``on_step_end`` and hands it to ``sink``.

    Add it after the other callbacks: the work they do at a step's end (the skill evaluation)
    then counts in that step, under its own phase (``eval``); what no phase claims is ``other``.
    """

    def __init__(self, clock: StepClock, sink: Callable[[dict[str, float]], None]):
        self.clock, self.sink = clock, sink
        self._last: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.clock.take()  # loading and set-up are not a step
        self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        wall = now - (self._last if self._last is not None else now)
        self._last = now
        self.sink(step_record(wall, self.clock.take()))


def make_step_time_callback(clock: StepClock, sink: Callable[[dict[str, float]], None]):
    """A ``transformers.TrainerCallback`` that reports each step's ``time/*_s`` record to ``sink``."""
    from transformers import TrainerCallback

    cls = type("StepTimeCallback", (_StepTimeCallback, TrainerCallback), {"__doc__": _StepTimeCallback.__doc__})
    return cls(clock, sink)


def metrics_sink(metrics: dict) -> Callable[[dict[str, float]], None]:
    """A sink that appends each value to TRL's ``_metrics["train"]`` lists (averaged at each log)."""

    def sink(rec: dict[str, float]) -> None:
        for k, v in rec.items():
            metrics["train"][k].append(v)

    return sink
