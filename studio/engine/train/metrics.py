"""Training metrics as an append-only JSONL file, a tolerant reader, and Trainer callbacks.

Why a file and not a queue: the trainer runs in a child process (see :mod:`studio.engine.train.jobs`)
that must survive the web app being closed or restarted. The child appends one JSON object
per line to ``runs/<id>/metrics.jsonl``; the UI (or ``studio runs``, or a notebook) re-reads
it whenever it likes. Each line is flushed and fsync'ed, so a crash (even SIGKILL or a power
cut) loses at most the line being written; the reader skips a torn line, and the writer
starts a fresh line if the file it re-opens ends in a torn one (resume after a crash).

Line format (one object per line)::

    {"step": 12, "time": 1733000000.123, "kind": "train", "train/loss": 1.23, "train/learning_rate": 2e-4}

- ``step``: optimizer step (``TrainerState.global_step``), int.
- ``time``: Unix time in seconds (float) when the line was written.
- ``kind``: ``"train"`` (per-step logs), ``"eval"`` (evaluation), ``"summary"`` (the
  trainer's end-of-training averages), ``"resume"`` (training restarted from a checkpoint
  at ``step``: earlier lines with a higher step are superseded by the redone steps, and
  the readers drop them), or any other word a caller picks (e.g. the RL trainer's
  ``"curriculum"`` / ``"rollouts"``).
- metric keys use TRL's slash names. :class:`MetricsCallback` maps Trainer log keys:
  keys that already contain ``/`` stay as they are (``rewards/format/mean``,
  ``completions/mean_length``); ``eval_<x>`` → ``eval/<x>`` (line kind ``"eval"``);
  anything else → ``train/<x>`` (``loss`` → ``train/loss``, ``grad_norm`` →
  ``train/grad_norm``, ``learning_rate`` → ``train/learning_rate``, ``mean_token_accuracy``
  → ``train/mean_token_accuracy``, GRPO's ``reward`` → ``train/reward``); ``epoch`` stays
  ``epoch``. Derived: ``train/tokens_per_s`` (from TRL's cumulative ``num_tokens`` between
  two logs). The final summary (``train_runtime``, ``train_loss``…) becomes
  ``summary/<x>`` with kind ``"summary"``.
- Non-finite numbers (NaN/inf) are written as ``null`` so every line is strict JSON;
  the key is still present, so a NaN loss shows up as a gap, not as silence.

``progress.json`` (beside ``metrics.jsonl``, rewritten atomically about once a second)::

    {"step": 12, "max_steps": 100, "epoch": 0.4, "fraction": 0.12, "elapsed_s": 30.5,
     "eta_s": 223.7, "steps_per_s": 0.39, "updated": 1733000000.1, "phase": "train"}

``phase`` is ``"train"`` while training and ``"done"`` after ``on_train_end``. The ETA uses
the steps done *in this process* (a resumed run does not count the restored steps as fast).

Graceful stop: :func:`install_graceful_stop` makes SIGINT/SIGTERM set a :class:`StopFlag`
instead of raising ``KeyboardInterrupt`` mid-step; :class:`StopFlagCallback` then asks the
Trainer to save a checkpoint and stop at the next step end. A second signal falls back to
the default behaviour (``KeyboardInterrupt``) so a stuck process can still be interrupted.

Additions to the ARCHITECTURE contract: ``MetricsWriter.log(step, kind=..., **values)`` and
``log_dict``; :class:`NullMetrics`; :class:`MetricsReader` (incremental, for polling);
:func:`last_values`; :func:`to_long_frame` / :func:`ema` (curve data for the UI);
:func:`write_json_atomic` / :func:`read_json`.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

_log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.json"



# --------------------------------------------------------------------------- small file helpers
def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder + rename).

    A reader never sees a half-written file: it sees the old content or the new one.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object file; ``{}`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _json_default(o: Any) -> Any:
    """JSON fallback for numpy / torch scalars and paths."""
    if hasattr(o, "item"):
        try:
            return o.item()
        except (TypeError, ValueError):
            pass
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    return str(o)


def _clean(value: Any) -> Any:
    """Numbers → plain int/float (non-finite → None); tensors/arrays of size 1 → scalars."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    return str(value)


# --------------------------------------------------------------------------- writer
class MetricsWriter:
    """Append-only writer of ``metrics.jsonl`` (one JSON object per line).

    Each :meth:`log` writes one complete line with a single ``write`` call, then flushes
    and fsyncs, so a crash mid-write leaves at most one torn last line (which
    :func:`read_metrics` skips). When it opens a file whose last line is torn (the previous
    process died mid-write), it first writes a newline so the torn bytes stay on their own.
    Thread-safe (one lock per writer).

    Args:
        path: the ``metrics.jsonl`` file (its folder is created) — or a run folder, in
            which case ``<folder>/metrics.jsonl`` is used.
        fsync: fsync after each line (default True; turn off only for benchmarks).
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True):
        p = Path(path)
        if p.is_dir() or p.suffix == "":
            p = p / METRICS_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        self.path = p
        self._fsync = fsync
        self._lock = threading.Lock()
        self._f = open(p, "ab")
        try:
            if p.stat().st_size > 0:
                with open(p, "rb") as r:
                    r.seek(-1, os.SEEK_END)
                    if r.read(1) != b"\n":
                        self._f.write(b"\n")
                        self._sync()
        except OSError:
            pass

    def _sync(self) -> None:
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def log(self, step: int, kind: str = "train", **values: Any) -> dict:
        """Append one line ``{"step", "time", "kind", **values}``; returns the record written.

        ``values`` with slash names can be passed with ``**{"train/loss": 0.5}`` or through
        :meth:`log_dict`. Raises ``ValueError`` when called after :meth:`close`.
        """
        return self.log_dict(step, values, kind=kind)

    def log_dict(self, step: int, values: dict[str, Any], kind: str = "train") -> dict:
        """Like :meth:`log` with the metrics in a dict (keys may contain ``/``)."""
        record: dict[str, Any] = {"step": int(step), "time": round(time.time(), 3), "kind": str(kind)}
        for k, v in values.items():
            if k in ("step", "time", "kind"):
                continue
            record[str(k)] = _clean(v)
        line = (json.dumps(record, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8")
        with self._lock:
            if self._f.closed:
                raise ValueError(f"MetricsWriter for {self.path} is closed.")
            self._f.write(line)
            self._sync()
        return record

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        with self._lock:
            if not self._f.closed:
                self._sync()
                self._f.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullMetrics:
    """A writer that writes nothing (null object): pass it where no run folder exists,
    instead of sprinkling ``if writer:`` through the trainer."""

    path = None

    def log(self, step: int, kind: str = "train", **values: Any) -> dict:
        """Return the record that would have been written; write nothing."""
        return self.log_dict(step, values, kind)

    def log_dict(self, step: int, values: dict[str, Any], kind: str = "train") -> dict:
        """Return the record that would have been written; write nothing."""
        return {"step": int(step), "time": time.time(), "kind": kind, **{k: _clean(v) for k, v in values.items()}}

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> "NullMetrics":
        return self

    def __exit__(self, *exc) -> None:
        pass


# --------------------------------------------------------------------------- readers
#: ``kind`` of the line :class:`MetricsCallback` writes when training (re)starts at step N:
#: lines written before it with a step above N belong to steps that are being redone
#: (a crash or ``kill -9`` lost them after the last checkpoint) and are superseded.
RESUME_KIND = "resume"


def _supersede(records: list[dict], new: list[dict]) -> list[dict]:
    """Append ``new`` to ``records`` in place, applying resume lines (see :data:`RESUME_KIND`):
    each drops the records before it whose step is above its own. Resume lines themselves
    are not kept. Returns ``records``."""
    for rec in new:
        if rec.get("kind") == RESUME_KIND:
            try:
                at = int(rec["step"])
            except (TypeError, ValueError):
                continue
            records[:] = [r for r in records if not (isinstance(r.get("step"), (int, float)) and r["step"] > at)]
            continue
        records.append(rec)
    return records


def _parse_lines(data: bytes) -> list[dict]:
    out = []
    for raw in data.split(b"\n"):
        raw = raw.strip()
        if not raw:
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # torn line (crash mid-write) or garbage: skip it
        if isinstance(rec, dict) and "step" in rec:
            out.append(rec)
    return out


def read_metrics(path: str | os.PathLike, kind: str | None = None) -> list[dict]:
    """All records of a ``metrics.jsonl`` (or of ``<run folder>/metrics.jsonl``), in file order.

    Tolerant: a missing file gives ``[]``; a half-written last line (or any unparsable line)
    is skipped. ``kind`` keeps only the records of that kind (``"train"``, ``"eval"``…).
    After a resume, the redone steps replace what the lost ones wrote (one point per step;
    see :data:`RESUME_KIND`).
    """
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    try:
        data = p.read_bytes()
    except OSError:
        return []
    recs = _supersede([], _parse_lines(data))
    return [r for r in recs if r.get("kind") == kind] if kind else recs


class MetricsReader:
    """Incremental reader for polling: each :meth:`read` parses only the bytes appended
    since the last call (complete lines only; a torn tail is kept until it is completed).

    If the file shrinks or is replaced (new inode), it starts over. Thread-safe.
    """

    def __init__(self, path: str | os.PathLike):
        p = Path(path)
        if p.is_dir() or p.suffix == "":
            p = p / METRICS_FILE
        self.path = p
        self.records: list[dict] = []
        self._offset = 0
        self._ino: int | None = None
        self._lock = threading.Lock()

    def read(self) -> list[dict]:
        """Return all records so far (the same list object grows between calls)."""
        with self._lock:
            try:
                st = self.path.stat()
            except OSError:
                self.records, self._offset, self._ino = [], 0, None
                return self.records
            if st.st_ino != self._ino or st.st_size < self._offset:
                self.records, self._offset, self._ino = [], 0, st.st_ino
            if st.st_size > self._offset:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    chunk = f.read(st.st_size - self._offset)
                end = chunk.rfind(b"\n")
                if end >= 0:
                    _supersede(self.records, _parse_lines(chunk[: end + 1]))
                    self._offset += end + 1
            return self.records


def last_values(records: Iterable[dict]) -> dict[str, Any]:
    """The last non-null value of every metric key over ``records`` (plus ``step``)."""
    out: dict[str, Any] = {}
    for r in records:
        for k, v in r.items():
            if k in ("time", "kind") or v is None:
                continue
            out[k] = v
    return out


def ema(values: list[float | None], alpha: float = 0.1) -> list[float | None]:
    """Exponential moving average, debiased like TensorBoard's smoothing.

    ``s_t = (1-alpha)·s_{t-1} + alpha·x_t``, divided by ``1-(1-alpha)^n`` (n = values seen)
    so the first points are not pulled toward 0. ``None`` inputs give ``None`` and do not
    update the average. ``alpha`` in (0, 1]; 1 returns the input.

    >>> [round(v, 3) for v in ema([1.0, 1.0, 1.0], alpha=0.5)]
    [1.0, 1.0, 1.0]
    >>> [round(v, 3) for v in ema([0.0, 2.0], alpha=0.5)]
    [0.0, 1.333]
    """
    if not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1].")
    out: list[float | None] = []
    s, n = 0.0, 0
    for v in values:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            out.append(None)
            continue
        n += 1
        s = (1 - alpha) * s + alpha * float(v)
        out.append(s / (1 - (1 - alpha) ** n))
    return out


def match_keys(patterns: Iterable[str], keys: Iterable[str]) -> list[str]:
    """Keys matching any of ``patterns`` (exact names or fnmatch globs like ``rewards/*/mean``),
    in pattern order then key order, without duplicates."""
    keys = list(keys)
    out: list[str] = []
    for pat in patterns:
        hits = [k for k in keys if fnmatch.fnmatchcase(k, pat)] if any(c in pat for c in "*?[") else (
            [pat] if pat in keys else [])
        for k in sorted(hits) if len(hits) > 1 else hits:
            if k not in out:
                out.append(k)
    return out


def to_long_frame(records: list[dict], patterns: Iterable[str], *, smooth: float | None = None,
                  x: str = "step"):
    """Curve data in long format for ``gr.LinePlot``: a pandas DataFrame with columns
    ``step`` (int), ``value`` (float), ``series`` (str: the metric key).

    ``patterns`` are metric keys or globs (:func:`match_keys`). With ``smooth`` (EMA alpha),
    each series also gets ``"<key> (smoothed)"``. Records without the key are skipped;
    ``null`` values are dropped. An empty frame still has the three columns.
    """
    import pandas as pd

    all_keys: list[str] = []
    seen: set[str] = set()
    for r in records:
        for k in r:
            if k not in seen:
                seen.add(k)
                all_keys.append(k)
    keys = match_keys(patterns, all_keys)
    steps: list[int] = []
    vals: list[float] = []
    series: list[str] = []
    for k in keys:
        pts = [(r.get(x, 0), r[k]) for r in records if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        if not pts:
            continue
        steps += [int(s) for s, _ in pts]
        vals += [float(v) for _, v in pts]
        series += [k] * len(pts)
        if smooth:
            sm = ema([float(v) for _, v in pts], alpha=smooth)
            steps += [int(s) for s, _ in pts]
            vals += [float(v) for v in sm]  # type: ignore[arg-type]
            series += [f"{k} (smoothed)"] * len(pts)
    return pd.DataFrame({"step": pd.Series(steps, dtype="int64"), "value": pd.Series(vals, dtype="float64"),
                         "series": pd.Series(series, dtype="object")})


#: Names that moved to :mod:`studio.engine.train.callbacks`; still importable from here.
_CALLBACKS = {"MetricsCallback", "StopFlagCallback", "StopFlag", "install_graceful_stop", "map_log_keys"}


def __getattr__(name: str):
    if name in _CALLBACKS:  # imported on first use: the callbacks import transformers when built
        from studio.engine.train import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
