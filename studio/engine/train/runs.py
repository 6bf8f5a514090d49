"""Run folders: naming, the status file, listing, and finding the last complete checkpoint.

A run is one folder ``runs/<YYYYmmdd-HHMMSS>-<kind>-<name>/`` holding everything about one
training job, so it can be read without the app (``studio runs``, a notebook, TensorBoard):

=================  ==================================================================
``config.yaml``    the exact config the child ran (``studio <kind> --config …``)
``status.json``    ``{"status": running|finished|failed|stopped, "pid", "started",
                   "ended", "exit_code", "error", ...}`` — written atomically
``job.json``       how the job was spawned (:mod:`studio.engine.train.jobs`)
``metrics.jsonl``  append-only metrics (:mod:`studio.engine.train.metrics`)
``progress.json``  step / max_steps / elapsed / ETA (:class:`~studio.engine.train.callbacks.MetricsCallback`)
``train.log``      the child's stdout + stderr
``error.log``      the traceback of an unexpected training error (never shown in the UI)
``checkpoint-N/``  transformers checkpoints (also accepted one folder down, e.g. ``checkpoints/``)
``adapter/``       the final PEFT adapter (``adapter_config.json`` + safetensors)
=================  ==================================================================

Why a status file and not only the process table: the app may be restarted while a job
runs, and a finished run must still say how it ended. Who writes it: the job wrapper
(:mod:`studio.engine.train.jobs`) records start and exit code; a trainer command may use
:func:`track_run` to record ``stopped``/``failed`` with an error message itself (and so
also when it is run straight from a terminal, without the app).

Additions to the ARCHITECTURE contract: :func:`safe_name`, :func:`read_status` /
:func:`write_status`, :func:`track_run`, :func:`find_last_checkpoint`, :func:`find_adapter`,
:func:`exportable_adapter`,
:func:`run_info`, :func:`pid_alive`, file-name constants.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from studio.engine.train.metrics import (
    METRICS_FILE,
    PROGRESS_FILE,
    last_values,
    read_json,
    read_metrics,
    write_json_atomic,
)
from studio.engine.train.checkpoints import checkpoint_step, find_last_checkpoint  # noqa: F401 - part of this API
from studio.errors import InputError, StudioError, TrainingError

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
JOB_FILE = "job.json"
LOG_FILE = "train.log"
ERROR_FILE = "error.log"
ADAPTER_DIR = "adapter"

STATUSES = ("running", "finished", "failed", "stopped")
_ID_RE = re.compile(r"^(?P<ts>\d{8}-\d{6})-(?P<kind>[a-z0-9]+)-(?P<name>.+?)(?:-(?P<dup>\d+))?$")


def safe_name(name: str | None, max_len: int = 48) -> str:
    """A file-system-safe run name: letters, digits, ``.``, ``_`` and ``-`` only.

    Other characters become ``-``, runs of ``-`` collapse, leading dots/dashes go, and the
    result is cut to ``max_len``. An empty result becomes ``"run"``.

    >>> safe_name("My run: lr=2e-4 / rank 8")
    'My-run-lr-2e-4-rank-8'
    >>> safe_name("../../etc")
    'etc'
    >>> safe_name("")
    'run'
    """
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or ""))
    s = re.sub(r"[-._]*-[-._]*", "-", s)  # "-.-", "--" → "-"
    s = re.sub(r"\.{2,}", ".", s)
    s = s.strip("-._")[:max_len].strip("-._")
    return s or "run"


def new_run_dir(runs_dir: str | os.PathLike, kind: str, name: str | None = None) -> Path:
    """Create and return a fresh run folder ``<runs_dir>/<YYYYmmdd-HHMMSS>-<kind>-<name>/``.

    ``kind`` is a command name such as ``"sft"`` or ``"rl"``; ``name`` is cleaned with
    :func:`safe_name`. Two runs started in the same second get ``-2``, ``-3``… suffixes.

    Raises:
        InputError: ``kind`` is not a lower-case word (letters/digits).
    """
    if not re.fullmatch(r"[a-z0-9]+", kind or ""):
        raise InputError(f"Run kind {kind!r} must be a lower-case word such as 'sft' or 'rl'.")
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{kind}-{safe_name(name)}"
    for i in range(1, 1000):
        p = root / (base if i == 1 else f"{base}-{i}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise InputError(f"Could not create a new run folder under {root}; too many runs named {base}.")


# --------------------------------------------------------------------------- status file
def pid_alive(pid: int | None) -> bool:
    """True if a process with this pid exists and is not a zombie (Linux ``/proc`` check)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        state = stat[stat.rfind(b")") + 2: stat.rfind(b")") + 3]
        return state not in (b"Z", b"X")
    except OSError:
        return True


def read_status(run_dir: str | os.PathLike) -> dict:
    """The run's ``status.json`` as a dict (``{}`` when missing or unreadable)."""
    return read_json(Path(run_dir) / STATUS_FILE)


def write_status(run_dir: str | os.PathLike, status: str | None = None, **fields: Any) -> dict:
    """Merge ``status`` and ``fields`` into ``status.json`` atomically; returns the new dict.

    Setting a final status (finished/failed/stopped) also sets ``ended`` unless given or
    the run had already ended (then the first end time stays).
    ``updated`` is always refreshed. Raises ``ValueError`` for an unknown status word.
    """
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    path = Path(run_dir) / STATUS_FILE
    # Several processes update this file (app, job wrapper, trainer): serialise the
    # read-modify-write with an flock so no one's fields are lost.
    with open(Path(run_dir) / ".status.lock", "a+") as lk:
        fcntl.flock(lk.fileno(), fcntl.LOCK_EX)
        try:
            data = read_json(path)
            if status is not None:
                # a run already ended keeps its end time when a later write restates how it
                # ended (a forced stop, a poller): "took" must not grow while a run sits stopped
                already_ended = data.get("status") not in (None, "running") and data.get("ended")
                data["status"] = status
                if status != "running" and not already_ended:
                    fields.setdefault("ended", time.time())
            data.update(fields)
            data["updated"] = time.time()
            write_json_atomic(path, data)
        finally:
            fcntl.flock(lk.fileno(), fcntl.LOCK_UN)
    return data


def effective_status(st: dict) -> str:
    """The status to show: a ``running`` status whose process is gone (on this host) is
    ``failed`` — the process was killed without anyone recording how it ended."""
    s = st.get("status") or "unknown"
    if s == "running":
        same_host = st.get("host") in (None, socket.gethostname())
        if same_host and st.get("pid") and not pid_alive(int(st["pid"])):
            return "failed"
    return s


#: Known causes of errors raised deep inside transformers/TRL: (regex on the whole exception
#: chain's text, the one-line message to show; ``{0}``… are the regex groups).
_KNOWN_FAILURES = (
    (r"Image features and image tokens do not match[^\n]*?tokens: (\d+), features:? (\d+)",
     "A training sample's image tokens do not match its image features (tokens: {0}, features: {1}): a row "
     "holds images and a video together (GLM-4.1V takes images or one video per sample) or max_length cuts "
     "an image span. Run `studio doctor` on the data and fix the rows it reports."),
    (r"Image features and image tokens do not match",
     "A training sample's image tokens do not match its image features: a row holds images and a video "
     "together (GLM-4.1V takes images or one video per sample) or max_length cuts an image span. Run "
     "`studio doctor` on the data and fix the rows it reports."),
    (r"Connection closed by peer|Connection reset by peer|Broken pipe|ProcessGroupGloo|NCCL (?:error|communicator)"
     r"|Watchdog caught collective operation timeout|DistNetworkError|failed to recv|Timed out waiting",
     "Another process of this multi-process run stopped (killed or crashed) or stopped answering, so this "
     "one could not go on. The last complete checkpoint is intact: Resume (or run launch.sh again) "
     "continues from it."),
    (r"(?:CUDA|MPS)? ?out of memory",
     "Training ran out of memory; lower batch_size or max_length (or the image pixel budget), or turn "
     "QLoRA on, then start again (a run with checkpoints resumes)."),
)


def _chain(e: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def explain_failure(e: BaseException) -> str:
    """One line for the user about an unexpected training error (no traceback).

    Looks through the whole exception chain (``__cause__`` / ``__context__``) for a known
    cause, so a wrapper's misleading text (TRL re-raises "Image features and image tokens
    do not match" as "The current `max_length` … is too short") does not hide the real one;
    otherwise ``"<Type>: <first line>"``.

    >>> try:
    ...     try:
    ...         raise ValueError("Image features and image tokens do not match, tokens: 120, features: 24")
    ...     except ValueError as inner:
    ...         raise ValueError("The current `max_length` (4096) is too short") from inner
    ... except ValueError as e:
    ...     msg = explain_failure(e)
    >>> "(tokens: 120, features: 24)" in msg, "max_length (4096)" in msg
    (True, False)
    >>> explain_failure(KeyError("pixel_values"))
    "KeyError: 'pixel_values'"
    """
    chain = _chain(e)
    text = "\n".join(str(x) for x in chain)
    for rx, msg in _KNOWN_FAILURES:
        m = re.search(rx, text, re.IGNORECASE)
        if m:
            return msg.format(*m.groups())
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


@contextlib.contextmanager
def track_run(run_dir: str | os.PathLike, kind: str, stop_flag: Any = None) -> Iterator[dict]:
    """Record a run's life in ``status.json`` from inside the training process.

    Writes ``running`` (this pid) on entry; on a normal exit ``stopped`` if ``stop_flag``
    (a :class:`~studio.engine.train.callbacks.StopFlag` or anything truthy once a stop was asked)
    is set, else ``finished``; on an exception ``failed`` with a one-line error.
    ``KeyboardInterrupt`` counts as ``stopped``. Yields the status dict. The launch is
    recorded too: ``processes``, ``strategy`` and ``backend``
    (:func:`studio.engine.train.distributed.describe`; 1 / None for a single process); an
    earlier start's ``before_training`` / ``stopped_before_step``
    (:func:`studio.engine.train.phase.mark_stopped_before_training`) are cleared.

    In a multi-process launch only the main process writes ``status.json``; another process
    that fails appends its traceback to ``error.log`` (naming its rank) and re-raises.

    Raises:
        StudioError: re-raised as it is (its message is already meant for the user).
        TrainingError: in place of any other exception, with the one line of
            :func:`explain_failure` plus where the details are; the traceback goes to
            ``error.log`` in the run folder (and ``status.json["traceback"]``), so the CLI,
            ``train.log`` and the UI never show one.

    The job wrapper of :mod:`studio.engine.train.jobs` respects a ``stopped``/``failed`` written
    here and adds the exit code.
    """
    from studio.engine.train import distributed

    if not distributed.is_main_process():
        with _replica_errors(run_dir, distributed.rank()):
            yield {}
        return
    # the launch, and no word of how an earlier start of this folder stopped before its first step
    fields = {k: v for k, v in distributed.describe().items() if k != "nodes"}
    fields.update(before_training=None, stopped_before_step=None)
    if os.environ.get("STUDIO_JOB") == "1":  # under the job wrapper: it owns ``pid``/``started``
        st = write_status(run_dir, "running", kind=kind, child_pid=os.getpid(), ended=None, error=None, **fields)
    else:
        st = write_status(run_dir, "running", kind=kind, pid=os.getpid(), child_pid=None,
                          host=socket.gethostname(), started=time.time(), ended=None, exit_code=None,
                          error=None, **fields)
    try:
        yield st
    except KeyboardInterrupt:
        write_status(run_dir, "stopped", error="interrupted before a checkpoint could be saved")
        raise
    except StudioError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        write_status(run_dir, "failed", error=msg, traceback=traceback.format_exc(limit=20))
        raise
    except Exception as e:  # noqa: BLE001 - a bug or a library error: one line for the user
        tb = traceback.format_exc()
        _append_error(run_dir, tb)
        msg = explain_failure(e)
        write_status(run_dir, "failed", error=msg, traceback=tb[-20000:])
        raise TrainingError(f"{msg} (details: {Path(run_dir) / ERROR_FILE})") from None
    except BaseException as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        write_status(run_dir, "failed", error=msg, traceback=traceback.format_exc(limit=20))
        raise
    else:
        write_status(run_dir, "stopped" if stop_flag else "finished")


def _append_error(run_dir: str | os.PathLike, text: str, who: str = "") -> None:
    try:
        with open(Path(run_dir) / ERROR_FILE, "a", encoding="utf-8") as f:
            f.write(f"--- {datetime.now().isoformat(timespec='seconds')}{who}\n{text}\n")
    except OSError:
        pass


@contextlib.contextmanager
def _replica_errors(run_dir: str | os.PathLike, rank: int) -> Iterator[None]:
    """A non-main process of a launch: its unexpected error goes to ``error.log`` (the main
    process records the run's status); user errors and stops pass through unrecorded."""
    try:
        yield
    except (StudioError, KeyboardInterrupt):
        raise
    except Exception:  # noqa: BLE001
        _append_error(run_dir, traceback.format_exc(), f" (process rank {rank})")
        raise


# --------------------------------------------------------------------------- checkpoints
def find_adapter(run_dir: str | os.PathLike) -> Path | None:
    """``run_dir/adapter`` when it holds a PEFT adapter (``adapter_config.json``), else None."""
    p = Path(run_dir) / ADAPTER_DIR
    return p if (p / "adapter_config.json").is_file() else None


def exportable_adapter(run_dir: str | os.PathLike) -> Path | None:
    """What an export of this run merges: the final ``adapter/``, else (a stopped, failed
    or still running run) the newest complete checkpoint that holds a PEFT adapter
    (``adapter_config.json``), else None. ``studio export --adapter`` takes either."""
    a = find_adapter(run_dir)
    if a is not None:
        return a
    ck = find_last_checkpoint(run_dir)
    return ck if ck is not None and (ck / "adapter_config.json").is_file() else None


# --------------------------------------------------------------------------- listing
@dataclass
class RunInfo:
    """One run folder, summarised for tables.

    Attributes:
        id: folder name; path: the folder; kind/name: parsed from the name (or status.json);
        status: running/finished/failed/stopped, or "unknown" (no status.json), with a
            ``running`` whose process vanished shown as ``failed`` and a run stopped before
            step 1 as ``stopped before training``;
        step / max_steps: from progress.json, else the last metrics step;
        metrics: last value of every metric key (``train/loss``, ``train/reward``…);
        adapter / last_checkpoint: paths as strings or None;
        started / ended: Unix times or None; exit_code, error: as recorded;
        processes / strategy: how the last start was launched (``2`` / ``"ddp"`` for a
            two-process ``studio scale`` launch; 1 / None for one process or unrecorded).
    """

    id: str
    path: str
    kind: str
    name: str
    status: str
    step: int | None = None
    max_steps: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None
    last_checkpoint: str | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None
    processes: int = 1
    strategy: str | None = None

    def kind_label(self) -> str:
        """``"sft"``, or ``"sft · ddp × 2"`` for a multi-process run (the runs tables' kind column).

        >>> RunInfo("x", "x", "rl", "x", "finished", processes=2, strategy="ddp").kind_label()
        'rl · ddp × 2'
        """
        if self.processes and self.processes > 1:
            return f"{self.kind} · {self.strategy or 'ddp'} × {self.processes}"
        return self.kind

    @property
    def loss(self) -> float | None:
        """Last training loss (``train/loss``), if any."""
        return self.metrics.get("train/loss")

    @property
    def reward(self) -> float | None:
        """Last mean reward (``rewards/mean`` as the RL trainer logs it, else TRL's
        ``train/reward``), if any."""
        for k in ("rewards/mean", "train/reward"):
            if self.metrics.get(k) is not None:
                return self.metrics[k]
        return None

    def headline(self) -> str:
        """``"loss 0.412"`` / ``"reward 0.63"`` / ``""`` for the runs table."""
        if self.reward is not None:
            return f"reward {self.reward:.4g}"
        if self.loss is not None:
            return f"loss {self.loss:.4g}"
        return ""

    def to_dict(self) -> dict:
        """Plain dict (JSON-safe)."""
        return asdict(self)


def run_info(run_dir: str | os.PathLike) -> RunInfo:
    """Summarise one run folder (reads status, progress, metrics; never raises on bad files)."""
    p = Path(run_dir)
    m = _ID_RE.match(p.name)
    st = read_status(p)
    job = read_json(p / JOB_FILE)
    prog = read_json(p / PROGRESS_FILE)
    recs = read_metrics(p / METRICS_FILE)
    last = last_values(recs)
    step = prog.get("step")
    if step is None and recs:
        step = max(int(r.get("step", 0)) for r in recs)
    ckpt = find_last_checkpoint(p)
    adapter = find_adapter(p)
    status = effective_status(st) if st else ("unknown" if not job else "unknown")
    if status == "stopped" and st.get("before_training"):  # Stop came before step 1: nothing trained
        status = "stopped before training"
    return RunInfo(
        id=p.name,
        path=str(p),
        kind=st.get("kind") or job.get("kind") or (m.group("kind") if m else ""),
        name=m.group("name") if m else p.name,
        status=status,
        step=step,
        max_steps=prog.get("max_steps") or None,
        metrics={k: v for k, v in last.items() if k != "step"},
        adapter=str(adapter) if adapter else None,
        last_checkpoint=str(ckpt) if ckpt else None,
        started=st.get("started") or job.get("started"),
        ended=st.get("ended"),
        exit_code=st.get("exit_code"),
        error=st.get("error"),
        processes=int(st.get("processes") or 1),
        strategy=st.get("strategy"),
    )


def is_run_dir(p: Path) -> bool:
    """A folder that looks like a run: named like one or holding a status/config/metrics file."""
    if not p.is_dir() or p.name.startswith("."):
        return False
    return bool(_ID_RE.match(p.name)) or any((p / f).is_file() for f in (STATUS_FILE, CONFIG_FILE, METRICS_FILE))


def list_runs(runs_dir: str | os.PathLike, kind: str | None = None) -> list[RunInfo]:
    """All runs under ``runs_dir``, newest first (by folder name, which starts with the time).

    ``kind`` keeps only runs of that kind. A missing ``runs_dir`` gives ``[]``.
    """
    root = Path(runs_dir)
    try:
        dirs = [p for p in root.iterdir() if is_run_dir(p)]
    except OSError:
        return []
    infos = [run_info(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]
    return [i for i in infos if kind is None or i.kind == kind]


def format_duration(seconds: float | None) -> str:
    """``3725`` → ``"1:02:05"``, ``65`` → ``"1:05"``, None → ``"–"``.

    >>> format_duration(3725), format_duration(65), format_duration(None)
    ('1:02:05', '1:05', '–')
    """
    if seconds is None:
        return "–"
    s = int(round(max(0.0, float(seconds))))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def runs_table(infos: list[RunInfo]) -> list[list[Any]]:
    """Rows ``[id, kind, status, step, loss/reward]`` for a printed or UI table."""
    rows = []
    for i in infos:
        step = "" if i.step is None else (f"{i.step}/{i.max_steps}" if i.max_steps else str(i.step))
        rows.append([i.id, i.kind_label(), i.status, step, i.headline()])
    return rows


#: Fields of a run config that hold paths; in a recipe they are relative to the recipe file.
RECIPE_PATH_FIELDS = ("data", "dataset_info", "eval_data", "model.name_or_path", "model.adapter")


def is_recipe(config_path: str | os.PathLike) -> bool:
    """True when ``config_path`` is a *recipe*, not a run folder's own config.

    A run's config is a ``config.yaml`` whose folder is a run folder: named like one
    (``<time>-<kind>-<name>``, as :func:`new_run_dir` makes them, also before its first
    status is written) or holding ``status.json``. Anything else (e.g.
    ``sample_data/workshop/sft.yaml``) is a recipe. Starting a recipe makes a new run
    folder; starting a run folder's ``config.yaml`` continues that run.
    """
    p = Path(config_path).resolve()
    in_run = p.name == CONFIG_FILE and (bool(_ID_RE.match(p.parent.name)) or (p.parent / STATUS_FILE).is_file())
    return not in_run


def resolve_recipe_paths(data: dict, recipe: str | os.PathLike) -> dict:
    """Make the relative paths of a recipe mapping absolute against the recipe's folder.

    ``data`` and ``eval_data`` are always read against the recipe's folder (data a recipe
    generates on first use goes there too); the model and adapter only when that path exists
    there, so hub ids such as ``zai-org/GLM-4.1V-9B-Thinking`` and short names such as
    ``toy-base`` stay as they are. Returns ``data``.
    """
    base = Path(recipe).resolve().parent
    for dotted in RECIPE_PATH_FIELDS:
        *parents, leaf = dotted.split(".")
        holder = data
        for p in parents:
            holder = holder.get(p) if isinstance(holder.get(p), dict) else None
            if holder is None:
                break
        if holder is None or not isinstance(holder.get(leaf), str) or not holder[leaf]:
            continue
        value = holder[leaf]
        p = Path(os.path.expanduser(value))
        if p.is_absolute():
            continue
        cand = base / p
        if cand.exists() or leaf in ("data", "dataset_info", "eval_data"):
            holder[leaf] = str(cand)
    return data


def load_recipe(config_cls, path: str | os.PathLike):
    """A validated run config (``config_cls``: SFTRunConfig or RLRunConfig) from a recipe file,
    its relative paths read against the recipe's folder and no run folder set yet.

    Raises:
        ConfigError: unreadable YAML or a bad value (the message names the field).
    """
    from studio.config import read_yaml_mapping

    data = resolve_recipe_paths(read_yaml_mapping(path), path)
    data["output_dir"] = ""
    cfg = config_cls.from_dict(data)
    cfg.validate()
    return cfg


def recipe_run(config_cls, path: str | os.PathLike, runs_dir: str | os.PathLike, kind: str,
               check=None) -> tuple[Path, str]:
    """Validate a recipe (and ``check(cfg)``, e.g. its data), then make its new run folder:
    ``(run_dir, config.yaml text)`` — what the SFT/RL tabs' recipe buttons start. A refused
    recipe leaves no folder behind."""
    cfg = load_recipe(config_cls, path)
    if check is not None:
        check(cfg)
    run = new_run_dir(runs_dir, kind, getattr(cfg, "name", None) or Path(path).stem)
    cfg.output_dir = str(run)
    return run, cfg.to_yaml()
