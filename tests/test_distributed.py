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
