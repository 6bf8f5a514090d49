"""Scale-out: the launch files `studio scale` writes, rank-aware run folders, and 2-process runs.

The end-to-end tests start `bash runs/<id>/launch/launch.sh` written with `--cpu`: two CPU
processes under torchrun with gloo, the same code paths a GPU cluster runs with NCCL. They
check that every result exists once (metrics.jsonl, rollouts.jsonl, train.log, TensorBoard,
status.json, checkpoints, adapter), that the global batch is per-device × processes ×
accumulation, and that the RL curriculum stays identical in both processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE_DATA, free_port


# --------------------------------------------------------------------------- helpers
def _env(runs: Path, **extra) -> dict:
    """Environment of a launched run: this checkout first on the path, offline, a free port."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), STUDIO_RUNS=str(runs),
               MAIN_PORT=str(free_port()), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.pop("STUDIO_JOB", None)
    env.update(extra)
    return env


def _studio(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "studio", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r


def _make_scaled_run(tmp_path: Path, kind: str, args: list[str], strategy: str = "ddp") -> tuple[Path, dict]:
    """A run folder made by `studio <kind> … --dry-run`, then `studio scale … --gpus 2 --cpu`."""
    runs = tmp_path / "runs"
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = _env(runs)
    _studio([kind, *args, "--runs-dir", str(runs), "--dry-run"], env, tmp_path)
    (run,) = runs.iterdir()
    out = _studio(["scale", str(run), "--strategy", strategy, "--gpus", "2", "--cpu"], env, tmp_path).stdout
    assert "2 CPU processes (gloo)" in out and "global batch = per-device batch × 2 processes" in out
    return run, env


def _launch(run: Path, env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(run / "launch" / "launch.sh"), *args], cwd=run.parent.parent, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _sft_args(steps: int, save: int, **over) -> list[str]:
    args = ["--data", str(SAMPLE_DATA / "sft" / "train.jsonl"), "--max-steps", str(steps), "--save-steps", str(save),
            "--eval-split", "0", "--batch-size", "1", "--grad-accum", "2", "--rank", "4"]
    for k, v in over.items():
        args += ["--set", f"{k}={v}"]
    return args


# --------------------------------------------------------------------------- launch files
def test_cpu_launch_runs_torchrun_processes_with_the_cpu_switch(tmp_path):
    """--cpu: accelerate's torchrun launcher (MULTI_GPU type) with 2 processes, no mixed precision
    forced on the run, GPUs hidden unless STUDIO_CPU=0; arguments reach the trainer; exec keeps
    the launcher's exit code and signals."""
    from accelerate.commands.config.config_args import load_config_from_file

    from studio.engine.train.scale import write_launch

    (tmp_path / "config.yaml").write_text("model: {}\n")
    plan = write_launch(tmp_path, "rl", "ddp", gpus_per_node=2, cpu=True)
    cfg = load_config_from_file(str(plan.accelerate_config))
    assert cfg.distributed_type.value == "MULTI_GPU" and cfg.num_processes == 2
    assert cfg.mixed_precision == "no" and not cfg.use_cpu  # accelerate's --cpu would start one process
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "accelerate").write_text('#!/usr/bin/env bash\necho "CUDA=[${CUDA_VISIBLE_DEVICES-unset}] '
                                     'T=$TORCH_ELASTIC_SHUTDOWN_TIMEOUT"\nprintf "%s\\n" "$@"\nexit 7\n')
    (stub / "accelerate").chmod(0o755)
    env = dict(os.environ, PATH=f"{stub}{os.pathsep}{os.environ['PATH']}", MAIN_PORT="29611")
    env.pop("ACCELERATE", None)
    out = subprocess.run(["bash", str(plan.script), "--resume"], env=env, capture_output=True, text=True)
    assert out.returncode == 7  # the launcher's exit code is the script's
    lines = out.stdout.splitlines()
    assert lines[0] == "CUDA=[] T=120" and lines[-1] == "--resume" and "29611" in lines
    assert lines[lines.index("-m") + 1:lines.index("-m") + 3] == ["studio", "rl"]
    out = subprocess.run(["bash", str(plan.script)], env=dict(env, STUDIO_CPU="0"), capture_output=True, text=True)
    assert out.stdout.splitlines()[0].startswith("CUDA=[unset]")  # STUDIO_CPU=0: the GPUs again
    gpu = write_launch(tmp_path, "rl", "ddp", gpus_per_node=2)
    out = subprocess.run(["bash", str(gpu.script)], env=env, capture_output=True, text=True)
    assert out.stdout.splitlines()[0].startswith("CUDA=[unset]")  # written without --cpu: GPUs if any


def test_zero_on_cpu_says_it_needs_gpus(tmp_path, capsys):
    from studio.cli import main
    from studio.engine.train.scale import write_launch

    (tmp_path / "config.yaml").write_text("model: {}\n")
    assert main(["scale", str(tmp_path), "--strategy", "zero2", "--gpus", "2", "--cpu"]) == 2
    assert "ZeRO (DeepSpeed) runs on NVIDIA GPUs only" in capsys.readouterr().err
    assert not (tmp_path / "launch").exists()
    plan = write_launch(tmp_path, "sft", "zero3", gpus_per_node=2)
    out = subprocess.run(["bash", str(plan.script)], env=dict(os.environ, STUDIO_CPU="1"),
                         capture_output=True, text=True)
    assert out.returncode == 2 and "ZeRO (DeepSpeed) runs on NVIDIA GPUs only" in out.stderr


def test_fsdp_on_cpu_processes_is_refused_not_silently_ddp(tmp_path, capsys, monkeypatch):
    """accelerate 1.16 would train plain DDP on CPU processes given an FSDP config: refused when
    the launch is written (--cpu) and when an FSDP launch starts on a machine without CUDA."""
    from studio.cli import main
    from studio.engine.train import distributed as D
    from studio.errors import ConfigError

    (tmp_path / "config.yaml").write_text("model: {}\n")
    assert main(["scale", str(tmp_path), "--strategy", "fsdp", "--gpus", "2", "--cpu"]) == 2
    assert "FSDP runs on GPU processes only" in capsys.readouterr().err and not (tmp_path / "launch").exists()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="FSDP runs on GPU processes only.*this machine trains on the CPU"):
        D.init(on_cpu=True)


# --------------------------------------------------------------------------- rank-aware pieces
def test_single_process_helpers_are_the_identity(monkeypatch):
    from studio.engine.train import distributed as D

    for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(v, raising=False)
    assert (D.rank(), D.world_size(), D.is_main_process(), D.is_distributed()) == (0, 1, True, False)
    assert D.all_gather_objects({"a": 1}) == [{"a": 1}] and D.sum_all([1, 2.5]) == [1.0, 2.5]
    assert D.any_rank(True) and not D.any_rank(False)
    assert D.shard(list(range(5))) == [0, 1, 2, 3, 4] and D.shard(list(range(5)), 1, 2) == [1, 3]
    assert D.describe() == {"processes": 1, "strategy": None, "backend": None, "nodes": 1}
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert (D.rank(), D.world_size(), D.is_main_process()) == (3, 4, False)
    assert D.describe()["strategy"] == "fsdp" and D.describe()["nodes"] == 2
    assert D.main_only(lambda: "wrote")() is None
    monkeypatch.setenv(D.TIMEOUT_VAR, "soon")
    from studio.errors import ConfigError

    with pytest.raises(ConfigError, match="STUDIO_DIST_TIMEOUT"):
        D.timeout_s()


def test_replica_writes_no_status_metrics_or_config(tmp_path, monkeypatch):
    """A non-main process: no status.json, a null metrics writer, its crash in error.log."""
    from studio.engine.train.callbacks import MetricsCallback
    from studio.engine.train.metrics import NullMetrics
    from studio.engine.train.runs import track_run

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    cb = MetricsCallback(tmp_path)
    assert isinstance(cb.writer, NullMetrics) and not (tmp_path / "metrics.jsonl").exists()
    with track_run(tmp_path, "sft") as st:
        assert st == {}
    assert not (tmp_path / "status.json").exists()
    with pytest.raises(RuntimeError):
        with track_run(tmp_path, "sft"):
            raise RuntimeError("rank one broke")
    log = (tmp_path / "error.log").read_text()
    assert "(process rank 1)" in log and "rank one broke" in log
    assert not (tmp_path / "status.json").exists()
    monkeypatch.setenv("RANK", "0")
    with track_run(tmp_path, "rl"):
        pass
    st = json.loads((tmp_path / "status.json").read_text())
    assert (st["status"], st["processes"], st["strategy"], st["backend"]) == ("finished", 2, "ddp", "gloo")


def test_a_dead_peer_is_explained():
    """The error rank 0 gets when rank 1 was killed (seen in a kill -9 run) reads as a cause and a way on."""
    from studio.engine.train.runs import explain_failure

    gloo = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer "
                        "[127.0.0.1]:40108. This is typically caused by a remote worker crashing.")
    msg = explain_failure(gloo)
    assert msg.startswith("Another process of this multi-process run stopped") and "checkpoint is intact" in msg


def test_new_run_folders_are_refused_under_a_launch(tmp_path, monkeypatch, capsys):
    """N processes given --data (or a recipe) would make N run folders."""
    from studio.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    runs = tmp_path / "runs"
    assert main(["sft", "--data", str(SAMPLE_DATA / "sft" / "train.jsonl"), "--runs-dir", str(runs), "--dry-run"]) == 2
    assert "multi-process launch trains an existing run folder" in capsys.readouterr().err
    assert main(["rl", "--config", str(SAMPLE_DATA / "workshop" / "rl.yaml"), "--runs-dir", str(runs), "--dry-run"]) == 2
    assert "not a recipe" in capsys.readouterr().err
    assert not runs.exists()


def test_each_process_takes_its_slice_of_the_same_pool():
    """Both processes draw the same global batch from identical curricula; each finds the whole
    pool from its own slice; the kept groups split evenly (cycled when the pool repeats)."""
    from studio.engine.train.curriculum import CurriculumConfig, CurriculumState
    from studio.engine.train.rl.rollouts import PromptDrawer
    from studio.engine.train.rl.trainer import share_of_kept
    from studio.errors import StudioError

    drawers = []
    for _ in range(2):
        st = CurriculumState(20, CurriculumConfig(seed=3))
        st.init_offline({i: (i % 5) / 4 for i in range(20)})
        st.expansion_ema = 1.5
        drawers.append(PromptDrawer(st, 20))
    bases = [d.draw(4) for d in drawers]
    assert bases[0] == bases[1] and len(set(bases[0])) == 4
    pools = [d.pool_for(bases[0][r * 2:(r + 1) * 2], r, 2) for r, d in enumerate(drawers)]
    assert pools[0] == pools[1] and pools[0][0] == bases[0] and len(pools[0][1]) == 2  # 6 = ceil(4 × 1.5)
    with pytest.raises(StudioError, match="curricula have parted"):
        drawers[0].pool_for([99, 98], 0, 2)
    assert share_of_kept([5, 2, 7, 1], 4, 0, 2) + share_of_kept([5, 2, 7, 1], 4, 1, 2) == [5, 2, 7, 1]
    assert share_of_kept([5, 2, 7], 4, 1, 2) == [7, 5]


def test_runs_list_a_distributed_run_once_with_its_launch(tmp_path, capsys):
    from studio.cli import main
    from studio.engine.train.runs import list_runs, new_run_dir, write_status

    runs = tmp_path / "runs"
    run = new_run_dir(runs, "sft", "big")
    write_status(run, "finished", kind="sft", processes=2, strategy="fsdp", backend="gloo")
    single = new_run_dir(runs, "rl", "small")
    write_status(single, "finished", kind="rl")
    (info,) = [i for i in list_runs(runs) if i.id == run.name]
    assert (info.processes, info.strategy, info.kind_label()) == (2, "fsdp", "sft · fsdp × 2")
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and "sft · fsdp × 2" in out[2] + out[3] and "rl " in out[2] + out[3]


def test_a_scaled_run_starts_from_the_tab_through_its_launch(tmp_path):
    """The job panel's Start/Resume run launch.sh once `studio scale` wrote it; a forced stop
    reaches processes that live in sessions of their own (as torchrun's do)."""
    from studio.engine.train.jobs import JobManager
    from studio.engine.train.processes import descendants, kill_tree
    from studio.engine.train.runs import new_run_dir
    from studio.engine.train.scale import write_launch

    runs = tmp_path / "runs"
    run = new_run_dir(runs, "sft", "x")
    (run / "config.yaml").write_text("model: {}\n")
    jm = JobManager(runs)
    assert jm.command_for("sft", run)[:3] == [jm.python, "-m", "studio"]
    write_launch(run, "sft", "ddp", gpus_per_node=2, cpu=True)
    assert jm.command_for("sft", run, ["--resume"]) == ["bash", str(run / "launch" / "launch.sh"), "--resume"]
    assert JobManager.display_command("sft", "runs/x", ["--resume"]) == "studio sft --config runs/x/config.yaml --resume"
    assert JobManager.display_command("sft", run) == f"bash {run / 'launch' / 'launch.sh'}"
    tree = subprocess.Popen(["bash", "-c", "setsid sleep 300 & setsid sleep 301 & wait"])
    try:
        assert _wait(lambda: len(descendants(tree.pid)) >= 2, 10)
        kids = descendants(tree.pid)
        kill_tree(tree.pid)
        assert _wait(lambda: not any(_alive(p) for p in kids), 10)
    finally:
        tree.kill()
        tree.wait()


def _wait(pred, timeout: float, poll: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(poll)
    return False


def _alive(pid: int) -> bool:
    from studio.engine.train.runs import pid_alive

    return pid_alive(pid)


# --------------------------------------------------------------------------- 2-process runs through launch.sh
def _step_lines(run: Path) -> list[dict]:
    return [m for m in _lines(run / "metrics.jsonl") if m.get("kind") == "train" and "train/loss" in m]


def _tb_steps(run: Path, tag: str = "train/loss") -> list[int]:
    """Steps of ``tag`` in the run's TensorBoard events (every events file under tb/)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for f in sorted((run / "tb").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f))
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            steps += [e.step for e in acc.Scalars(tag)]
    return steps


def _assert_one_copy_sft(run: Path, steps: int, out_dir: str) -> None:
    """Each step once in metrics.jsonl and TensorBoard, each log line once in train.log,
    status.json recorded once by rank 0 as a 2-process ddp run, one final adapter/model."""
    got = [m["step"] for m in _step_lines(run)]
    assert got == list(range(1, steps + 1)), got
    assert sorted(_tb_steps(run)) == list(range(1, steps + 1))
    log = (run / "train.log").read_text()
    assert log.count("data doctor:") >= 1 and log.count(f"saved ") == 1 and log.count("finished at step") == 1
    st = json.loads((run / "status.json").read_text())
    assert (st["status"], st["processes"], st["strategy"], st["backend"]) == ("finished", 2, "ddp", "gloo"), st
    assert (run / out_dir).is_dir() and any((run / out_dir).glob("*.safetensors"))
    assert not (run / "error.log").exists()


def _launch_bg(run: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(run / "launch" / "launch.sh"), *args], cwd=run.parent.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _ranks(pid: int) -> dict[int, int]:
    """rank → pid of the training processes below a launch (torchrun's workers)."""
    from studio.engine.train.processes import descendants

    out = {}
    for p in descendants(pid):
        try:
            env = dict(x.split("=", 1) for x in Path(f"/proc/{p}/environ").read_text().split("\0") if "=" in x)
        except OSError:
            continue
        if "RANK" in env and "TORCHELASTIC_RUN_ID" in env:
            out[int(env["RANK"])] = p
    return out


@pytest.mark.slow
def test_two_process_lora_sft_writes_one_copy_and_stops_and_resumes(tmp_path):
    """2 CPU processes, per-device batch 1 × 2 processes × accumulation 2 = global batch 4 (the
    epoch advances by 4/24 rows per step). Stop (the signal the job panel sends) at a step end
    saves a checkpoint in both processes and ends them; launching again continues the count."""
    run, env = _make_scaled_run(tmp_path, "sft", _sft_args(6, 2))
    proc = _launch_bg(run, env)

    def stepped():
        return (run / "metrics.jsonl").exists() and len(_step_lines(run)) >= 1

    _wait(lambda: stepped() or proc.poll() is not None, 900, 1)  # a launch that dies fails at once
    assert stepped(), proc.communicate()[0][-3000:]
    import signal

    proc.send_signal(signal.SIGINT)  # the job wrapper forwards Stop as SIGINT to launch.sh's launcher
    out, _ = proc.communicate(timeout=300)
    st = json.loads((run / "status.json").read_text())
    assert st["status"] == "stopped", out[-3000:]
    stopped_at = _step_lines(run)[-1]["step"]
    assert stopped_at < 6 and (run / f"checkpoint-{stopped_at}" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (run / f"checkpoint-{stopped_at}").glob("rng_state*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]  # each process saved its part of the checkpoint
    assert not _ranks(proc.pid) and not (run / "adapter").exists()
    r = _launch(run, env)  # SFT resumes from the last checkpoint by default
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert f"resuming from checkpoint-{stopped_at}" in (run / "train.log").read_text()
    _assert_one_copy_sft(run, 6, "adapter")
    epochs = [m["epoch"] for m in _step_lines(run)]
    assert epochs[0] == pytest.approx(4 / 24) and epochs[-1] == pytest.approx(6 * 4 / 24)
    assert r.stdout.count("finished at step 6") == 1  # the replica prints nothing


@pytest.mark.slow
def test_two_process_full_sft_survives_kill_9_of_one_rank(tmp_path):
    """Full fine-tune on 2 processes; kill -9 of rank 1 ends the run (no hung rank 0) as failed
    with a message naming the cause, the checkpoint intact; launching again resumes it."""
    import signal

    run, env = _make_scaled_run(tmp_path, "sft", _sft_args(4, 1, finetuning="full"))
    proc = _launch_bg(run, env)
    ready = (run / "checkpoint-1" / "trainer_state.json").is_file
    _wait(lambda: ready() or proc.poll() is not None, 900, 1)  # a launch that dies fails at once
    assert ready(), proc.communicate()[0][-3000:]
    ranks = _ranks(proc.pid)
    assert set(ranks) == {0, 1}
    os.kill(ranks[1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=400)  # torchrun ends rank 0 too; nothing hangs
    assert proc.returncode != 0 and not any(_alive(p) for p in ranks.values())
    st = json.loads((run / "status.json").read_text())
    assert st["status"] == "failed" and st["error"].startswith("Another process of this multi-process run"), st
    ckpts = sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
    assert ckpts and ckpts[-1] < 4
    r = _launch(run, env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert f"resuming from checkpoint-{ckpts[-1]}" in (run / "train.log").read_text()
    st = json.loads((run / "status.json").read_text())
    assert st["status"] == "finished" and _step_lines(run)[-1]["step"] == 4
    assert (run / "model" / "studio_model.json").is_file() and not (run / "adapter").exists()


def _rl_data(tmp_path: Path, n_train: int, n_eval: int) -> tuple[Path, Path]:
    """The first prompts of the workshop's RL shapes set (toy-thinking answers some, misses some)."""
    import shutil

    src = SAMPLE_DATA / "workshop" / "rl-shapes"
    (tmp_path / "images").mkdir(parents=True)
    out = []
    for name, n in (("rl.jsonl", n_train), ("eval.jsonl", n_eval)):
        rows = src.joinpath(name).read_text().splitlines(keepends=True)[:n]
        for row in rows:  # media must sit inside the data folder (symlinks out of it are refused)
            for image in json.loads(row)["images"]:
                shutil.copyfile(src / image, tmp_path / image)
        path = tmp_path / name
        path.write_text("".join(rows))
        out.append(path)
    return out[0], out[1]


@pytest.mark.slow
def test_two_process_rl_writes_one_copy_with_one_curriculum(tmp_path):
    """RLCS on 2 processes: 2 prompts × G=4 per process → a generation batch of 4 prompts; the
    pool's rollouts are gathered before advantages, so every process holds the same curriculum
    (checked each step: curriculum/processes_in_sync = 2); rollouts.jsonl, metrics.jsonl and
    train.log hold each step once; checkpoints carry one curriculum.json and both ranks' RNG."""
    train, evals = _rl_data(tmp_path, 16, 4)
    run, env = _make_scaled_run(tmp_path, "rl", [
        "--data", str(train), "--eval-data", str(evals), "--model", "toy-thinking", "--num-generations", "4",
        "--batch-size", "8", "--max-steps", "2", "--thinking-budget", "40", "--answer-budget", "8",
        "--set", "save_every=1", "--set", "eval_every=2", "--set", "kl_every=0",
        "--set", "curriculum.offline_samples=2", "--set", "rollouts_logged_per_step=8", "--allow-low-format"])
    r = _launch(run, env, timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    st = json.loads((run / "status.json").read_text())
    assert (st["status"], st["processes"], st["strategy"]) == ("finished", 2, "ddp"), st
    rolls = _lines(run / "rollouts.jsonl")
    assert sorted({x["step"] for x in rolls}) == [1, 2] and all(
        sum(x["step"] == s for x in rolls) == 8 for s in (1, 2))  # 8 logged per step, not 8 per process
    steps = [m for m in _lines(run / "metrics.jsonl") if "curriculum/step" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert all(m["curriculum/processes_in_sync"] == 2 for m in steps)
    assert steps[0]["rollout/rollouts_total"] >= 4 * 4  # the whole pool's rollouts: ≥ 4 prompts × G
    log = (run / "train.log").read_text()
    assert log.count("RL run:") == 1 and "B=4 prompts × G=4 (2 per process × 2 processes)" in log
    assert log.count("offline grading: 16/16 prompts (100 %)") == 1 and log.count("prompts × 2 samples in") == 1
    assert log.count("held-out accuracy") == 2 and log.count("done:") == 1
    ck = run / "checkpoints" / "checkpoint-1"
    assert (ck / "curriculum.json").is_file() and sorted(p.name for p in ck.glob("rng_state*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]
    assert (run / "adapter" / "adapter_model.safetensors").is_file() and not (run / "error.log").exists()


@pytest.mark.slow
def test_two_process_rl_stops_and_resumes_the_step_count(tmp_path):
    """Stop of a 2-process RL run saves a checkpoint (with the shared curriculum) at the same
    step in both processes; `launch.sh --resume` continues, each step once in rollouts.jsonl."""
    import signal

    train, evals = _rl_data(tmp_path, 16, 4)
    run, env = _make_scaled_run(tmp_path, "rl", [
        "--data", str(train), "--eval-data", str(evals), "--model", "toy-thinking", "--num-generations", "4",
        "--batch-size", "8", "--max-steps", "4", "--thinking-budget", "40", "--answer-budget", "8",
        "--set", "save_every=1", "--set", "eval_every=0", "--set", "kl_every=0",
        "--set", "curriculum.offline_samples=2", "--set", "rollouts_logged_per_step=8", "--allow-low-format"])

    def train_steps():
        if not (run / "metrics.jsonl").exists():
            return []
        return [m["step"] for m in _lines(run / "metrics.jsonl") if "curriculum/step" in m]

    proc = _launch_bg(run, env)
    assert _wait(lambda: len(train_steps()) >= 1, 1200, 1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=400)
    st = json.loads((run / "status.json").read_text())
    assert st["status"] == "stopped", out[-3000:]
    stopped_at = train_steps()[-1]
    assert stopped_at < 4 and (run / "checkpoints" / f"checkpoint-{stopped_at}" / "curriculum.json").is_file()
    r = _launch(run, env, "--resume", timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert train_steps() == [1, 2, 3, 4]
    rolls = _lines(run / "rollouts.jsonl")
    assert [x["step"] for x in rolls if x.get("kind") == "resume"] == [stopped_at]  # the resume mark
    assert [sum(x["step"] == s and "completion" in x for x in rolls) for s in (1, 2, 3, 4)] == [8, 8, 8, 8]
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_two_processes_reach_the_one_process_loss(tmp_path):
    """Equivalence: the same seed and global batch (1 process: batch 1 × accumulation 2;
    2 processes: batch 1 × 2 processes) give the same 20-step SFT loss curve within 1e-3
    (LoRA dropout 0 so no per-process randomness; both read rows in the same order)."""
    common = {"lora.dropout": 0}
    one, env = _make_scaled_run(tmp_path / "one", "sft", _sft_args(20, 100, **common))
    import shutil

    shutil.rmtree(one / "launch")  # one process: the plain command
    _studio(["sft", "--config", str(one / "config.yaml")], env, one.parent.parent)
    args = _sft_args(20, 100, **common)
    args[args.index("--grad-accum") + 1] = "1"
    two, env2 = _make_scaled_run(tmp_path / "two", "sft", args)
    r = _launch(two, env2, timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    a = [m["train/loss"] for m in _step_lines(one)]
    b = [m["train/loss"] for m in _step_lines(two)]
    (tmp_path / "curves.json").write_text(json.dumps({"one_process": a, "two_processes": b}))
    print("one process:  ", [round(x, 5) for x in a])
    print("two processes:", [round(x, 5) for x in b])
    print("max |diff|:", max(abs(x - y) for x, y in zip(a, b)))
    assert len(a) == len(b) == 20
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3
    assert [m["epoch"] for m in _step_lines(one)] == pytest.approx([m["epoch"] for m in _step_lines(two)])
