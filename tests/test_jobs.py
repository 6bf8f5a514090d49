"""JobManager: one job at a time, re-attach, graceful/forced stop, stale locks (no model)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from studio.engine.train import jobs as jobs_mod
from studio.engine.train.jobs import JobManager, final_status, tail_file
from studio.engine.train.metrics import read_metrics
from studio.engine.train.runs import list_runs, new_run_dir, read_status
from studio.errors import InputError, JobBusyError

# A stand-in trainer: writes a metrics line every 50 ms; on SIGINT it writes a last line and
# exits 0 the way StopFlagCallback + track_run would (status "stopped"). IGNORE_INT=1 makes it
# deaf to SIGINT (a hung trainer) to exercise the SIGKILL path; STEPS bounds the run.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from studio.engine.train.metrics import MetricsWriter, install_graceful_stop
    from studio.engine.train.runs import track_run
    run = os.environ["STUDIO_RUN_DIR"]
    flag = install_graceful_stop()
    if os.environ.get("IGNORE_INT") == "1":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    w = MetricsWriter(os.path.join(run, "metrics.jsonl"))
    steps = int(os.environ.get("STEPS", "100000"))
    print("child started", flush=True)
    with track_run(run, "sft", stop_flag=flag):
        for step in range(1, steps + 1):
            w.log(step, **{"train/loss": 1.0 / step})
            if flag:
                print("saving checkpoint and stopping", flush=True)
                break
            time.sleep(0.05)
    if os.environ.get("FAIL") == "1":
        print("boom: something broke", flush=True)
        sys.exit(3)
    print("child done", flush=True)
    """
)


def _child_cmd() -> list[str]:
    return [sys.executable, "-c", CHILD]


def _wait_for(pred, timeout=10.0, poll=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(poll)
    return False


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


def test_start_busy_reattach_graceful_stop(runs):
    jm = JobManager(runs)
    run = new_run_dir(runs, "sft", "first")
    job = jm.start("sft", run, cmd=_child_cmd())
    assert job.pid > 0 and job.kind == "sft"
    assert _wait_for(lambda: len(read_metrics(run)) >= 3), tail_file(run / "train.log")
    assert job.status == "running"
    assert read_status(run)["child_pid"] not in (None, job.pid)

    # One job at a time, across manager instances.
    run2 = new_run_dir(runs, "rl", "second")
    with pytest.raises(JobBusyError, match=rf"A sft job is running \(run {run.name}\) — stop it first or wait\."):
        JobManager(runs).start("rl", run2, cmd=_child_cmd())

    # A NEW manager (app restart) re-attaches to the same job.
    again = JobManager(runs).current()
    assert again is not None and again.pid == job.pid and again.run_dir == run.resolve()
    assert again.cmd == _child_cmd()

    t0 = time.monotonic()
    stopped = JobManager(runs).stop(graceful_timeout=10)
    assert time.monotonic() - t0 < 8
    assert stopped is not None and not stopped.alive()
    st = read_status(run)
    assert st["status"] == "stopped" and st["exit_code"] == 0 and not st.get("forced")
    assert "saving checkpoint and stopping" in jm.tail(run_dir=run)
    assert "job ended: exit code 0, status stopped" in tail_file(run / "train.log")
    assert jm.current() is None
    assert not (runs / jobs_mod.LOCK_FILE).exists()
    # The run folder stays readable and listed.
    info = {i.id: i for i in list_runs(runs)}[run.name]
    assert info.status == "stopped" and info.step >= 3 and info.loss is not None


def test_finished_and_failed_exit_codes(runs):
    jm = JobManager(runs)
    run = new_run_dir(runs, "sft", "short")
    job = jm.start("sft", run, cmd=_child_cmd(), env={"STEPS": "3"})
    assert job.wait(15)
    assert read_status(run)["status"] == "finished" and read_status(run)["exit_code"] == 0
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3]

    run = new_run_dir(runs, "sft", "broken")
    job = jm.start("sft", run, cmd=_child_cmd(), env={"STEPS": "2", "FAIL": "1"})
    assert job.wait(15)
    st = read_status(run)
    assert st["status"] == "failed" and st["exit_code"] == 3
    assert "boom: something broke" in st["error"]


def test_forced_stop_kills_group_and_records(runs):
    jm = JobManager(runs)
    run = new_run_dir(runs, "sft", "deaf")
    job = jm.start("sft", run, cmd=_child_cmd(), env={"IGNORE_INT": "1"})
    assert _wait_for(lambda: len(read_metrics(run)) >= 2)
    child_pid = read_status(run)["child_pid"]
    t0 = time.monotonic()
    jm.stop(graceful_timeout=1.0)
    assert 0.9 < time.monotonic() - t0 < 8
    st = read_status(run)
    assert st["status"] == "stopped" and st["forced"] is True and st["exit_code"] == -signal.SIGKILL
    assert not job.alive()
    assert _wait_for(lambda: not jobs_mod.pid_alive(child_pid), 5)
    assert jm.current() is None


def test_stop_without_waiting_escalates_in_the_wrapper(runs):
    """stop(wait=False) returns at once; the wrapper itself kills after the grace period."""
    jm = JobManager(runs)
    run = new_run_dir(runs, "sft", "nowait")
    job = jm.start("sft", run, cmd=_child_cmd(), env={"IGNORE_INT": "1"})
    assert _wait_for(lambda: len(read_metrics(run)) >= 1)
    t0 = time.monotonic()
    assert jm.stop(graceful_timeout=0.5, wait=False) is not None
    assert time.monotonic() - t0 < 0.5
    assert job.wait(8)
    assert read_status(run)["status"] == "stopped" and read_status(run)["forced"] is True


def test_unexpected_sigkill_of_trainer_is_failed(runs):
    """The OOM killer takes the trainer: the wrapper records failed with the signal name."""
    jm = JobManager(runs)
    run = new_run_dir(runs, "sft", "oom")
    job = jm.start("sft", run, cmd=_child_cmd())
    assert _wait_for(lambda: len(read_metrics(run)) >= 2)
    os.kill(read_status(run)["child_pid"], signal.SIGKILL)
    assert job.wait(8)
    st = read_status(run)
    assert st["status"] == "failed" and st["exit_code"] == -9 and "SIGKILL" in st["error"]
    assert len(read_metrics(run)) >= 2  # metrics still readable


def test_whole_group_killed_then_new_manager_reconciles(runs):
    """Wrapper and trainer SIGKILLed together (nobody records the end): current() cleans the
    stale lock, marks the run failed, and a new job can start."""
    jm = JobManager(runs)
    run = new_run_dir(runs, "sft", "vanish")
    job = jm.start("sft", run, cmd=_child_cmd())
    assert _wait_for(lambda: len(read_metrics(run)) >= 1)
    os.killpg(job.pid, signal.SIGKILL)
    assert job.wait(5)
    assert read_status(run)["status"] == "running"  # nobody wrote the end …
    assert job.status == "failed"  # … but it reads as failed
    fresh = JobManager(runs)
    assert fresh.current() is None
    st = read_status(run)
    assert st["status"] == "failed" and "without recording" in st["error"]
    run2 = new_run_dir(runs, "sft", "next")
    job2 = fresh.start("sft", run2, cmd=_child_cmd(), env={"STEPS": "1"})
    assert job2.wait(10) and read_status(run2)["status"] == "finished"


def test_stale_lock_recovery(runs):
    """A lock left by a dead process (or a reused pid that is not our wrapper) is ignored."""
    runs.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = new_run_dir(runs, "rl", "old")
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": dead.pid}))
    lock = runs / jobs_mod.LOCK_FILE
    lock.write_text(json.dumps({"pid": dead.pid, "run_dir": str(run), "kind": "rl", "started": 1.0}))
    jm = JobManager(runs)
    assert jm.current() is None and not lock.exists()
    assert read_status(run)["status"] == "failed"

    # A live process that is not our wrapper (pid reuse) does not hold the lock either.
    lock.write_text(json.dumps({"pid": os.getpid(), "run_dir": str(run), "kind": "rl", "started": 1.0}))
    run2 = new_run_dir(runs, "sft", "new")
    job = jm.start("sft", run2, cmd=_child_cmd(), env={"STEPS": "1"})
    assert job.wait(10) and read_status(run2)["status"] == "finished"

    # Garbage in the lock file is stale too.
    lock.write_text("{not json")
    assert jm.current() is None and not lock.exists()


def test_default_command_and_input_errors(runs):
    jm = JobManager(runs)
    run = new_run_dir(runs, "sft", "cfg")
    with pytest.raises(InputError, match="config.yaml is missing"):
        jm.start("sft", run)
    with pytest.raises(InputError, match="does not exist"):
        jm.start("sft", runs / "nope", cmd=_child_cmd())
    assert jm.command_for("sft", run, ["--resume"])[1:] == [
        "-m", "studio", "sft", "--config", str(run / "config.yaml"), "--resume"]
    assert JobManager.display_command("sft", "runs/x") == "studio sft --config runs/x/config.yaml"


def test_final_status_table():
    assert final_status(0, False, {"status": "running"}) == {"exit_code": 0, "status": "finished"}
    assert final_status(0, True, {"status": "running"})["status"] == "stopped"
    assert final_status(130, True, {"status": "running"})["status"] == "stopped"
    assert final_status(0, False, {"status": "stopped"})["status"] == "stopped"  # trainer's own SIGTERM stop
    assert final_status(1, False, {"status": "stopped"})["status"] == "failed"  # crashed after stopping
    assert final_status(0, False, {"status": "failed", "error": "x"}) == {"exit_code": 0, "status": "failed"}
    assert final_status(2, False, {"status": "running"}, "ValueError: bad")["error"] == "ValueError: bad"
    assert "SIGSEGV" in final_status(-11, False, {"status": "running"})["error"]


def test_tail_collapses_carriage_returns(tmp_path):
    p = tmp_path / "train.log"
    p.write_bytes(b"a\n 10%|#  \r 50%|##### \r100%|##########\nlast \xff line\n")
    assert tail_file(p, 2) == "100%|##########\nlast \ufffd line"
    assert tail_file(tmp_path / "missing.log") == ""


def test_job_runs_from_another_working_directory(runs, monkeypatch, tmp_path):
    """The child finds the studio package even when the app runs elsewhere (not pip-installed)."""
    monkeypatch.chdir(tmp_path)
    run = new_run_dir(runs, "sft", "cwd")
    job = JobManager(runs).start("sft", run, cmd=_child_cmd(), env={"STEPS": "1"})
    assert job.wait(15), tail_file(run / "train.log")
    assert read_status(run)["status"] == "finished", tail_file(run / "train.log")


# --------------------------------------------------------------------------- the job panel (UI)
def test_job_panel_end_to_end_through_gradio_client(runs, tmp_path):
    """Start → live status/metrics → busy error → stop → resume, through the running app's API."""
    import gradio as gr
    from gradio_client import Client

    from studio.engine.train.runs import write_status
    from studio.ui.components import SFT_CURVES, curve_frames, live_curves
    from studio.ui.jobpanel import job_panel, status_line
    from studio.ui.context import AppContext

    ctx = AppContext(runs_dir=runs)
    made = []

    def make_config(name, lr):
        if not lr:
            raise InputError("`lr` must be a number such as 2e-4.")
        run = new_run_dir(runs, "sft", name)
        made.append(run)
        return run, f"name: {name}\nlr: {lr}\n"

    def command(run, resume):
        assert (run / "config.yaml").read_text().startswith("name: ")
        return _child_cmd()

    with gr.Blocks() as demo:
        name = gr.Textbox("demo")
        lr = gr.Textbox("2e-4")
        panel = job_panel(ctx, "sft", make_config, inputs=[name, lr], command=command, graceful_timeout=5)
        curves = live_curves(panel.run_dir_state, SFT_CURVES, timer=panel.timer)
    assert len(curves.plots) == len(SFT_CURVES)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        with pytest.raises(Exception, match="must be a number"):
            client.predict("bad", "", api_name="/sft_start")
        out = client.predict("demo", "2e-4", api_name="/sft_start")  # (status, log, cli, buttons…); State is not sent
        run_dir = made[-1]
        assert out[0].startswith("running") and out[0].endswith(run_dir.name)
        assert out[2] == f"studio sft --config {run_dir}/config.yaml"
        assert _wait_for(lambda: len(read_metrics(run_dir)) >= 3)
        st, log_text, *_ = panel.fns["poll"](str(run_dir))
        assert st.startswith("running") and "child started" in log_text
        frames = curve_frames(run_dir, SFT_CURVES)
        assert set(frames[0].series) == {"train/loss", "train/loss (smoothed)"} and len(frames[0]) >= 6
        with pytest.raises(Exception, match="A sft job is running"):
            client.predict("again", "1e-4", api_name="/sft_start")
        client.predict(str(run_dir), api_name="/sft_stop")
        assert _wait_for(lambda: panel.manager.current() is None, 10)
        assert read_status(run_dir)["status"] == "stopped" and read_status(run_dir)["exit_code"] == 0
        assert status_line(run_dir).startswith("stopped")
        # Resume needs a complete checkpoint.
        with pytest.raises(Exception, match="no complete checkpoint"):
            panel.fns["resume"](str(run_dir))
        (run_dir / "checkpoint-3").mkdir()
        (run_dir / "checkpoint-3" / "trainer_state.json").write_text("{}")
        assert "resume from checkpoint-3" in status_line(run_dir)
        out = panel.fns["resume"](str(run_dir))
        assert out[0] == str(run_dir) and read_status(run_dir)["attempts"] == 2
        assert panel.fns["attach"]()[0] == str(run_dir)  # a fresh page re-attaches
        panel.manager.stop(graceful_timeout=5)
        assert read_status(run_dir)["status"] == "stopped"
        assert tail_file(run_dir / "train.log").count("job started") == 2
    finally:
        demo.close()
        if panel.manager.current():
            panel.manager.stop(graceful_timeout=1)
    write_status(run_dir, "failed", error="CUDA out of memory")
    assert "CUDA out of memory" in status_line(run_dir)


def test_status_line_shows_the_measured_rate_and_the_time_left(tmp_path):
    """The SFT/RL tabs' line: steps/s (or s/step for slow RL steps) and time left, both languages."""
    from studio.engine.train.metrics import write_json_atomic
    from studio.engine.train.runs import write_status
    from studio.ui import i18n
    from studio.ui.jobpanel import status_line

    write_status(tmp_path, "running", pid=os.getpid())
    write_json_atomic(tmp_path / "progress.json", {"step": 120, "max_steps": 1400, "elapsed_s": 70.0,
                                                   "steps_per_s": 1.7412, "eta_s": 735.1})
    line = status_line(tmp_path)
    assert "step 120/1400 (9%) · elapsed 1:10 · 1.74 steps/s · 12:15 left" in line
    write_json_atomic(tmp_path / "progress.json", {"step": 12, "max_steps": 300, "steps_per_s": 0.4, "eta_s": 720})
    assert "2.5 s/step · 12:00 left" in status_line(tmp_path)
    old = i18n.default_language()
    try:
        i18n.set_default("zh")
        assert "2.5 秒/步 · 预计剩余 12:00" in status_line(tmp_path)
    finally:
        i18n.set_default(old)


def test_status_line_says_which_phase_runs_before_step_1(tmp_path):
    """The data doctor and RL's offline grading say what they do, how far they are and the time
    left (they used to show a bare "running" for a minute and more)."""
    from studio.engine.train.phase import PhaseProgress
    from studio.engine.train.runs import write_status
    from studio.ui import i18n
    from studio.ui.jobpanel import status_line

    write_status(tmp_path, "running", pid=os.getpid())
    lines = []
    p = PhaseProgress(tmp_path, "grading", "offline grading", 1200, "prompts", log_fn=lines.append,
                      write_every_s=0, log_every_s=0, main=True)
    p._t0 -= 30  # 30 s in
    p.update(400)
    line = status_line(tmp_path)
    assert line.startswith("running · offline grading: 400/1,200 prompts (33%) · elapsed 0:30 · 1:00 left")
    assert lines[-1] == "offline grading: 400/1200 prompts (33 %) · 1:00 left"
    old = i18n.default_language()
    try:
        i18n.set_default("zh")
        assert "离线评分：400/1,200 个提示（33%）" in status_line(tmp_path)
    finally:
        i18n.set_default(old)
    p.finish()
    assert lines[-1].startswith("offline grading: 1200/1200 prompts (100 %) in 0:3")
    PhaseProgress(tmp_path, "doctor", "data doctor", 9600, "rows", main=True).update(2400)
    assert re.search(r"running · data doctor: (0|2,400)/9,600 rows", status_line(tmp_path))
    # Stop pressed in a phase before step 1: it says it is stopping, without a checkpoint to save
    from studio.engine.train.metrics import write_json_atomic

    write_json_atomic(tmp_path / "job.json", {"kind": "sft", "stop_requested": 1.0})
    line = status_line(tmp_path)
    assert "· stopping: no step trained yet, so it ends without a checkpoint… · run " in line, line
    assert "saving a checkpoint" not in line
    PhaseProgress(tmp_path, "reading", "reading the data", 16800, "rows", main=True)
    assert "running · reading the data: 0/16,800 rows (0%)" in status_line(tmp_path)
    # a resumed run stopping there is not left "without a checkpoint": it keeps the one it started from
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    line = status_line(tmp_path)
    assert "· stopping before the next step: nothing new to save, the run keeps its checkpoint at step 2… · " in line
    assert "without a checkpoint" not in line
