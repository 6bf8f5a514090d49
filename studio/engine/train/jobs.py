"""One GPU job at a time: training runs as a child process that outlives the web app.

Why a child process: a training run takes minutes to hours; it must survive the browser
being closed, the app being restarted, and must be stoppable without killing the app
(a CUDA OOM or a segfault in a kernel must not take the UI down). The UI writes
``config.yaml`` into a run folder and runs exactly the CLI a user could type::

    python -m studio <kind> --config <run_dir>/config.yaml

How it is spawned — a small supervisor ("wrapper") sits between the app and the trainer::

    app ──Popen(start_new_session)──▶ python -m studio.engine.train.jobs --run-dir R -- <cmd…>
                                          └─Popen──▶ <cmd…>   (stdout+stderr → R/train.log)

The wrapper is the leader of a new process group (so the app's Ctrl-C never reaches the
trainer, and a forced stop can kill the whole group, dataloader workers included). It
waits for the trainer and records how it ended in ``status.json`` — also when the app is
not running any more — then releases the lock. It forwards a stop request (SIGINT or
SIGTERM sent to the wrapper) to the trainer as SIGINT, and escalates to SIGKILL of the
whole group itself after the grace period, so a stop survives an app restart too.

Files (see :mod:`studio.engine.train.runs`): ``<runs_dir>/.job.lock`` — ``{"pid", "run_dir", "kind",
"started", "host"}`` of the running job (pid = wrapper pid = process group id);
``<runs_dir>/.job.guard`` — an ``flock`` serialising lock checks between app processes;
``<run_dir>/job.json`` — ``{"pid", "kind", "cmd", "cwd", "started", "stop_requested",
"graceful_timeout"}`` (written by the app only); ``status.json`` (``pid`` = wrapper,
``child_pid`` = trainer); ``train.log``.

Stale locks: a lock whose pid is dead, a zombie, or a process that is not our wrapper for
that run (pid reuse, checked through ``/proc/<pid>/cmdline``) is removed (a lock written by
another host, on a shared folder, is trusted: delete ``.job.lock`` by hand if that host died), and a run left
``running`` by a job that vanished is recorded as ``failed`` (or ``stopped`` when a stop
had been asked).

How a run's final status is decided (by the wrapper, or by whoever finds the job gone):

===========================================  =====================================
trainer exit                                  status.json
===========================================  =====================================
0, no stop asked                              ``finished`` (unless the trainer wrote
                                              ``stopped``/``failed`` itself)
0 / 130 / signal, after a stop request         ``stopped`` (``forced: true`` if SIGKILL)
non-zero code                                  ``failed``, ``error`` = last log line
killed by a signal nobody asked for (OOM)     ``failed``, ``error`` = "killed by SIGKILL…"
wrapper and trainer both gone, nothing noted  ``failed`` (process vanished)
===========================================  =====================================

The child gets ``STUDIO_RUN_DIR=<run_dir>``, ``STUDIO_JOB=1``, ``PYTHONUNBUFFERED=1``, and the
folder holding the ``studio`` package first on ``PYTHONPATH``; it runs in the app's cwd.

Additions to the ARCHITECTURE contract: ``start(..., cmd=None, extra_args=(), env=None)``
(``extra_args`` e.g. ``["--resume"]``), ``stop(graceful_timeout=60, wait=True)``,
``JobManager.command_for()`` (the CLI line shown in the UI), ``JobManager.tail()``,
``Job.progress()``, ``Job.alive()``, ``Job.wait()``, ``Job.info`` (status.json).
POSIX only (process groups, ``fcntl``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from studio.engine.train.metrics import PROGRESS_FILE, read_json, write_json_atomic
from studio.engine.train.processes import become_subreaper, descendants, kill_tree
from studio.engine.train.processes import cmdline as _cmdline
from studio.engine.train.processes import group_members as _group_members
from studio.engine.train.runs import (
    CONFIG_FILE,
    JOB_FILE,
    LOG_FILE,
    effective_status,
    pid_alive,
    read_status,
    write_status,
)
from studio.errors import InputError, JobBusyError

LOCK_FILE = ".job.lock"
#: A run's multi-process launch, written by ``studio scale`` (:mod:`studio.engine.train.scale`).
LAUNCH_SCRIPT = "launch/launch.sh"
GUARD_FILE = ".job.guard"
WRAPPER_MODULE = "studio.engine.train.jobs"
#: Every name the wrapper has run under: a job started before the engine moved into
#: subpackages still runs ``-m studio.engine.jobs`` and is still ours.
WRAPPER_MODULES = (WRAPPER_MODULE, "studio.engine.jobs")
#: Extra seconds ``stop(wait=True)`` waits beyond the grace period before it kills the
#: group itself (the wrapper normally escalates first).
STOP_BACKSTOP_S = 10.0


def launch_script(run_dir: str | os.PathLike) -> Path | None:
    """``<run_dir>/launch/launch.sh`` when ``studio scale`` wrote one, else None."""
    p = Path(run_dir) / LAUNCH_SCRIPT
    return p if p.is_file() else None


def _now() -> float:
    return round(time.time(), 3)


def is_our_wrapper(pid: int | None, run_dir: str | os.PathLike | None = None) -> bool:
    """True when ``pid`` is alive and is our job wrapper (for ``run_dir`` when given).

    Guards against pid reuse after a reboot or a long time: the pid must run
    ``-m studio.engine.train.jobs --run-dir <run_dir>``. Where ``/proc`` is unavailable only
    liveness is checked.
    """
    if not pid_alive(pid):
        return False
    argv = _cmdline(int(pid))
    if argv is None:
        return True
    if not any(m in argv for m in WRAPPER_MODULES):
        return False
    if run_dir is not None:
        try:
            i = argv.index("--run-dir")
            return Path(argv[i + 1]).resolve() == Path(run_dir).resolve()
        except (ValueError, IndexError):
            return False
    return True


def tail_file(path: str | os.PathLike, n: int = 200, max_bytes: int = 256_000) -> str:
    """The last ``n`` lines of a text log (reads at most ``max_bytes`` from the end).

    Carriage-return progress bars (tqdm) are collapsed to their last state per line;
    undecodable bytes are replaced. A missing file gives ``""``.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            parts = [p for p in line.split("\r") if p.strip()]
            line = parts[-1] if parts else ""
        lines.append(line)
    if size > max_bytes and len(lines) > 1:
        lines = lines[1:]  # the first line is probably cut
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines[-n:])


@dataclass
class Job:
    """A training job: one child process working in one run folder.

    Attributes:
        run_dir: the run folder (absolute).
        pid: the wrapper's pid (= the process group id).
        kind: ``"sft"``, ``"rl"``…
        cmd: the trainer command (argv list).
        started: Unix time the job was started.
        child_pid: the trainer's pid once the wrapper has started it.
    """

    run_dir: Path
    pid: int
    kind: str
    cmd: list[str] = field(default_factory=list)
    started: float | None = None
    child_pid: int | None = None

    @property
    def id(self) -> str:
        """The run id (folder name)."""
        return self.run_dir.name

    @property
    def info(self) -> dict:
        """``status.json`` of the run (raw)."""
        return read_status(self.run_dir)

    @property
    def status(self) -> str:
        """running / finished / failed / stopped (a vanished process reads as failed)."""
        st = self.info
        if st.get("status") == "running" and not self.alive() and not pid_alive(st.get("pid")):
            return "failed"
        return effective_status(st) if st else ("running" if self.alive() else "unknown")

    @property
    def exit_code(self) -> int | None:
        """The trainer's exit code once recorded (negative: killed by that signal)."""
        return self.info.get("exit_code")

    def alive(self) -> bool:
        """True while the wrapper (hence the job) is running."""
        return pid_alive(self.pid)

    def wait(self, timeout: float | None = None, poll_s: float = 0.1) -> bool:
        """Wait until the job has ended; True if it did within ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(poll_s)
        return True

    def tail(self, n: int = 200) -> str:
        """Last ``n`` lines of ``train.log``."""
        return tail_file(self.run_dir / LOG_FILE, n)

    def progress(self) -> dict:
        """``progress.json`` (step, max_steps, elapsed_s, eta_s…) or ``{}``."""
        return read_json(self.run_dir / PROGRESS_FILE)

    def command_line(self) -> str:
        """The trainer command as one shell-quoted line."""
        return shlex.join(self.cmd)


class JobManager:
    """Starts, finds, stops and tails the one GPU job under ``runs_dir``.

    Every instance (in any process) that points at the same ``runs_dir`` sees the same
    job: state lives in files, not in this object, so a restarted app re-attaches with
    :meth:`current`.

    Args:
        runs_dir: the folder holding run folders (``ctx.runs_dir``).
        python: interpreter for the child (default: this one).
    """

    def __init__(self, runs_dir: str | os.PathLike, python: str | None = None):
        self.runs_dir = Path(runs_dir).resolve()
        self.python = python or sys.executable

    # ----------------------------------------------------------------- lock helpers
    @property
    def lock_path(self) -> Path:
        return self.runs_dir / LOCK_FILE

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Exclusive flock on ``.job.guard`` (serialises lock checks across processes)."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.runs_dir / GUARD_FILE, "a+") as g:
            fcntl.flock(g.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(g.fileno(), fcntl.LOCK_UN)

    def _job_from_lock(self, lock: dict) -> Job:
        run_dir = Path(lock["run_dir"])
        job = read_json(run_dir / JOB_FILE)
        return Job(run_dir=run_dir, pid=int(lock["pid"]), kind=lock.get("kind") or job.get("kind", ""),
                   cmd=list(job.get("cmd") or []), started=lock.get("started") or job.get("started"),
                   child_pid=read_status(run_dir).get("child_pid"))

    def _current_locked(self) -> Job | None:
        """current() body; the caller holds the guard."""
        lock = read_json(self.lock_path)
        if not lock:
            if self.lock_path.exists():
                self.lock_path.unlink(missing_ok=True)  # unreadable/corrupt lock: stale
            return None
        pid, run_dir = lock.get("pid"), lock.get("run_dir")
        if lock.get("host") not in (None, socket.gethostname()) and pid and run_dir:
            return self._job_from_lock(lock)  # another machine's job (shared folder): cannot check it
        if pid and run_dir and is_our_wrapper(int(pid), run_dir):
            return self._job_from_lock(lock)
        # Stale: the job ended (or vanished) without releasing the lock.
        if run_dir:
            finalize_vanished(Path(run_dir))
        self.lock_path.unlink(missing_ok=True)
        return None

    # ----------------------------------------------------------------- public API
    def current(self) -> Job | None:
        """The running job (possibly started by another process or before an app restart),
        or None. Cleans up a stale lock as a side effect."""
        with self._guard():
            return self._current_locked()

    def command_for(self, kind: str, run_dir: str | os.PathLike, extra_args: Sequence[str] = ()) -> list[str]:
        """The trainer argv: ``[python, -m, studio, <kind>, --config, <run_dir>/config.yaml, *extra_args]``,
        or ``[bash, <run_dir>/launch/launch.sh, *extra_args]`` once ``studio scale`` wrote a
        multi-process launch for the run (the tab's Start/Resume then run it; Stop reaches
        every process through the launcher)."""
        script = launch_script(run_dir)
        if script is not None:
            return ["bash", str(script), *extra_args]
        return [self.python, "-m", "studio", kind, "--config", str(Path(run_dir) / CONFIG_FILE), *extra_args]

    @staticmethod
    def display_command(kind: str, run_dir: str | os.PathLike, extra_args: Sequence[str] = ()) -> str:
        """The command a user would type: ``studio <kind> --config <run_dir>/config.yaml``
        (``bash <run_dir>/launch/launch.sh`` for a scaled run)."""
        if launch_script(run_dir) is not None:
            return shlex.join(["bash", str(Path(run_dir) / LAUNCH_SCRIPT), *extra_args])
        return shlex.join(["studio", kind, "--config", str(Path(run_dir) / CONFIG_FILE), *extra_args])

    def start(self, kind: str, run_dir: str | os.PathLike, cmd: Sequence[str] | None = None, *,
              extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> Job:
        """Start ``studio <kind> --config <run_dir>/config.yaml`` (or ``cmd``) as the job.

        The trainer's stdout and stderr are appended to ``<run_dir>/train.log``; ``status.json``
        becomes ``running``; ``job.json`` is (re)written. Starting again in the same run folder
        (resume) appends to the same log.

        Args:
            kind: command name (``"sft"``, ``"rl"``); also shown in the busy message.
            run_dir: an existing run folder (with ``config.yaml`` unless ``cmd`` is given).
            cmd: override of the trainer argv (tests, custom scripts).
            extra_args: appended to the default command (e.g. ``["--resume"]``).
            env: extra environment variables for the trainer.

        Raises:
            JobBusyError: another job is running (in any process using this runs_dir).
            InputError: missing run folder or config.yaml.
        """
        run = Path(run_dir).resolve()
        if not run.is_dir():
            raise InputError(f"Run folder {run} does not exist; create it with new_run_dir first.")
        if cmd is None:
            if not (run / CONFIG_FILE).is_file():
                raise InputError(f"{run / CONFIG_FILE} is missing; write the run's config before starting it.")
            argv = self.command_for(kind, Path(run_dir), extra_args)
        else:
            argv = [str(c) for c in cmd]
            if not argv:
                raise InputError("The job command is empty.")
        with self._guard():
            cur = self._current_locked()
            if cur is not None:
                raise JobBusyError(
                    f"A {cur.kind} job is running (run {cur.id}) — stop it first or wait."
                )
            started = _now()
            write_json_atomic(run / JOB_FILE, {
                "pid": None, "kind": kind, "cmd": argv, "cwd": os.getcwd(),
                "started": started, "stop_requested": None, "graceful_timeout": None,
            })
            write_status(run, "running", kind=kind, pid=None, child_pid=None, host=socket.gethostname(),
                         started=started, ended=None, exit_code=None, error=None, forced=None,
                         attempts=int(read_status(run).get("attempts") or 0) + 1)
            child_env = dict(os.environ)
            child_env.update(env or {})
            child_env.update({"STUDIO_RUN_DIR": str(run), "STUDIO_JOB": "1", "PYTHONUNBUFFERED": "1"})
            # launch.sh starts accelerate with this interpreter, whatever PATH holds
            child_env.setdefault("PYTHON", self.python)
            child_env.setdefault("ACCELERATE", f"{shlex.quote(self.python)} -m accelerate.commands.accelerate_cli")
            # `-m studio` must import this very package even when it is not pip-installed
            # and the app was started from another folder.
            pkg_root = str(Path(__file__).resolve().parents[3])
            paths = [p for p in child_env.get("PYTHONPATH", "").split(os.pathsep) if p]
            if pkg_root not in paths:
                child_env["PYTHONPATH"] = os.pathsep.join([pkg_root, *paths])
            wrapper = [self.python, "-m", WRAPPER_MODULE, "--run-dir", str(run), "--", *argv]
            log = open(run / LOG_FILE, "ab")
            try:
                log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} job started: {shlex.join(argv)}\n".encode())
                log.flush()
                try:
                    proc = subprocess.Popen(wrapper, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=child_env, start_new_session=True, close_fds=True)
                except OSError as e:
                    write_status(run, "failed", error=f"could not start the job: {e}")
                    raise InputError(f"Could not start the {kind} job: {e}") from None
            finally:
                log.close()
            # Reap the wrapper when it ends so it never lingers as a zombie in this process.
            threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
            job_info = read_json(run / JOB_FILE)
            job_info["pid"] = proc.pid
            write_json_atomic(run / JOB_FILE, job_info)
            write_json_atomic(self.lock_path, {"pid": proc.pid, "run_dir": str(run), "kind": kind,
                                               "started": started, "host": socket.gethostname()})
        return Job(run_dir=run, pid=proc.pid, kind=kind, cmd=argv, started=started)

    def stop(self, graceful_timeout: float = 60, wait: bool = True) -> Job | None:
        """Stop the running job: SIGINT first (the trainer saves a checkpoint and exits),
        SIGKILL of the whole process group after ``graceful_timeout`` seconds.

        The wrapper does the escalation, so it happens even if this app exits meanwhile.
        With ``wait`` this call blocks until the job is gone (killing the group itself
        ``STOP_BACKSTOP_S`` after the grace period as a backstop) and the status is final.
        Returns the job (None when nothing was running).
        """
        job = self.current()
        if job is None:
            return None
        info = read_json(job.run_dir / JOB_FILE)
        info.update(stop_requested=_now(), graceful_timeout=float(graceful_timeout))
        write_json_atomic(job.run_dir / JOB_FILE, info)
        try:
            os.kill(job.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        if not wait:
            return job
        if not job.wait(graceful_timeout + STOP_BACKSTOP_S):
            kill_tree(job.pid)  # a launch's processes live in sessions of their own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)
            job.wait(10)
        with self._guard():
            self._current_locked()  # records the final status if the wrapper could not
        return job

    def tail(self, n: int = 200, run_dir: str | os.PathLike | None = None) -> str:
        """Last ``n`` lines of ``train.log`` of ``run_dir`` (default: the running job's)."""
        if run_dir is None:
            job = self.current()
            if job is None:
                return ""
            run_dir = job.run_dir
        return tail_file(Path(run_dir) / LOG_FILE, n)


def finalize_vanished(run_dir: Path) -> None:
    """Record the end of a job whose processes are gone but whose status is still
    ``running`` (wrapper SIGKILLed, machine rebooted): ``stopped`` (forced) if a stop had
    been asked, else ``failed``. A status already final is left alone."""
    st = read_status(run_dir)
    if st.get("status") != "running":
        return
    job = read_json(run_dir / JOB_FILE)
    for pid in (st.get("pid"), st.get("child_pid"), job.get("pid"), job.get("child_pid")):
        if pid and pid_alive(int(pid)) and (st.get("host") in (None, socket.gethostname())):
            argv = _cmdline(int(pid)) or []
            if not argv or str(run_dir) in " ".join(argv) or any(m in argv for m in WRAPPER_MODULES):
                return  # something of this job still runs
    if job.get("stop_requested"):
        write_status(run_dir, "stopped", forced=True, exit_code=st.get("exit_code"),
                     error="stopped by force (killed) after the grace period")
    else:
        write_status(run_dir, "failed", error="the job's processes ended without recording how "
                     "(killed, or the machine restarted); see train.log. Resume from the last checkpoint.")


# --------------------------------------------------------------------------- the wrapper
def _last_log_line(run_dir: Path) -> str:
    for line in reversed(tail_file(run_dir / LOG_FILE, 30).splitlines()):
        if line.strip() and not line.startswith("==="):
            return line.strip()[:300]
    return ""


def final_status(rc: int, stop_requested: bool, recorded: dict, log_line: str = "") -> dict:
    """Decide the final ``status.json`` fields from the trainer's exit code (table in the
    module doc). ``recorded`` is the status.json the trainer may have updated itself.

    >>> final_status(0, False, {"status": "running"})["status"]
    'finished'
    >>> final_status(-9, True, {"status": "running"})["forced"]
    True
    >>> final_status(-9, False, {"status": "running"})["status"]
    'failed'
    """
    out: dict = {"exit_code": rc}
    own = recorded.get("status")  # anything but "running": the trainer said how it ended (track_run)
    if own == "failed":
        out["status"] = "failed"
        if not recorded.get("error"):
            out["error"] = log_line or f"exited with code {rc}"
        return out
    if own == "finished" and rc == 0:
        out["status"] = "finished"
        return out
    if own == "stopped" and (rc in (0, 130) or (rc < 0 and stop_requested)):
        out["status"] = "stopped"
        out["forced"] = rc == -signal.SIGKILL
        return out
    if stop_requested and (rc in (0, 130) or rc < 0):
        out["status"] = "stopped"
        out["forced"] = rc == -signal.SIGKILL
        if out["forced"]:
            out["error"] = "did not stop within the grace period; killed (resume from the last checkpoint)"
        return out
    if rc == 0:
        out["status"] = "finished"
        return out
    out["status"] = "failed"
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals.__members__.values() else f"signal {-rc}"
        out["error"] = (f"killed by {name} (out of memory?); resume from the last checkpoint"
                        + (f" — last log line: {log_line}" if log_line else ""))
    else:
        out["error"] = log_line or f"exited with code {rc}"
    return out


def _wrapper_main(argv: list[str]) -> int:
    """``python -m studio.engine.train.jobs --run-dir R -- cmd…``: run ``cmd``, record its end."""
    ap = argparse.ArgumentParser(prog="python -m studio.engine.train.jobs")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    run = Path(args.run_dir)
    runs_dir = run.parent
    state = {"child": None, "stop_at": None, "forced": False}
    lock = threading.Lock()

    def escalate(timeout: float) -> None:
        time.sleep(timeout)
        child = state["child"]
        if child is not None and child.poll() is None:
            state["forced"] = True
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            kill_tree(os.getpid())  # a launch's processes, in sessions of their own

    def on_signal(signum, frame):
        with lock:
            child = state["child"]
            if child is not None and child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGINT)
            if state["stop_at"] is None:
                state["stop_at"] = time.time()
                timeout = read_json(run / JOB_FILE).get("graceful_timeout") or 60.0
                threading.Thread(target=escalate, args=(float(timeout),), daemon=True).start()

    # Handlers (not SIG_IGN: an ignored SIGINT would be inherited by the trainer).
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    become_subreaper()
    write_status(run, "running", pid=os.getpid())
    try:
        with lock:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, close_fds=True)
            state["child"] = child
    except OSError as e:
        write_status(run, "failed", exit_code=127, error=f"could not start {cmd[:1]}: {e}")
        _release_lock(runs_dir)
        return 127
    write_status(run, None, child_pid=child.pid)
    if state["stop_at"] is not None:  # a stop arrived before the child existed
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGINT)
    rc = child.wait()
    stop_requested = state["stop_at"] is not None or bool(read_json(run / JOB_FILE).get("stop_requested"))
    fields = final_status(rc, stop_requested, read_status(run), _last_log_line(run))
    write_status(run, fields.pop("status"), **fields)
    print(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} job ended: exit code {rc}, status "
          f"{read_status(run).get('status')}", flush=True)
    _release_lock(runs_dir)
    # Stragglers (dataloader workers, generation servers, a launch's processes) must not keep the GPU.
    for pid in set(_group_members(os.getpgrp())) | set(descendants(os.getpid())):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return 0


def _release_lock(runs_dir: Path) -> None:
    """Remove ``.job.lock`` if it names this wrapper."""
    mgr = JobManager(runs_dir)
    with mgr._guard():
        lock = read_json(mgr.lock_path)
        if lock.get("pid") == os.getpid():
            mgr.lock_path.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(_wrapper_main(sys.argv[1:]))
