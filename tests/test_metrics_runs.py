"""metrics.jsonl writer/reader, Trainer callbacks, run folders and `studio runs` (no GLM model)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from studio.engine.train import metrics as M
from studio.engine.train import runs as R
from studio.errors import InputError, TrainingError


# --------------------------------------------------------------------------- metrics file
def test_writer_appends_lines_and_reader_skips_torn_tail(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    with M.MetricsWriter(path) as w:
        rec = w.log(1, **{"train/loss": 2.5, "train/learning_rate": 1e-4})
        w.log_dict(2, {"train/loss": float("nan"), "rewards/format/mean": 0.5})
        w.log(2, kind="eval", **{"eval/loss": 3.0})
    assert rec["step"] == 1 and rec["kind"] == "train" and isinstance(rec["time"], float)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x) for x in lines)
    assert json.loads(lines[1])["train/loss"] is None  # NaN → null (strict JSON)

    # A crash mid-line leaves a torn last line: the reader skips it …
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "time": 1.0, "kind": "train", "train/lo')
    recs = M.read_metrics(path)
    assert [r["step"] for r in recs] == [1, 2, 2]
    assert [r["step"] for r in M.read_metrics(path, kind="eval")] == [2]
    assert M.read_metrics(path.parent) == recs  # a run folder works too
    # … and a writer re-opening the file (resume) starts on a fresh line.
    with M.MetricsWriter(path) as w:
        w.log(3, **{"train/loss": 1.0})
    recs = M.read_metrics(path)
    assert [r["step"] for r in recs] == [1, 2, 2, 3] and recs[-1]["train/loss"] == 1.0
    assert M.read_metrics(tmp_path / "missing.jsonl") == []
    with pytest.raises(ValueError, match="closed"):
        w.log(4, x=1)


def test_writer_fsyncs_every_line(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(M.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    w = M.MetricsWriter(tmp_path / "m.jsonl")
    w.log(1, a=1)
    w.log(2, a=2)
    assert len(calls) >= 2
    w.close()


def test_incremental_reader_waits_for_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = M.MetricsReader(path)
    assert reader.read() == []
    w = M.MetricsWriter(path)
    w.log(1, a=1.0)
    assert [r["a"] for r in reader.read()] == [1.0]
    with open(path, "ab") as f:
        f.write(b'{"step": 2, "a": 2.0')  # torn: not yet visible
    assert len(reader.read()) == 1
    with open(path, "ab") as f:
        f.write(b"}\n")
    assert [r["a"] for r in reader.read()] == [1.0, 2.0]
    path.unlink()
    M.MetricsWriter(path).log(7, a=7.0)  # replaced file → start over
    assert [r["step"] for r in reader.read()] == [7]


def test_null_metrics_writes_nothing(tmp_path):
    n = M.NullMetrics()
    assert n.log(3, **{"train/loss": 1.0})["train/loss"] == 1.0
    n.close()
    assert list(tmp_path.iterdir()) == []


def test_long_frame_and_ema():
    recs = [{"step": s, "kind": "train", "train/loss": 4.0 / s, "rewards/a/mean": 0.1 * s, "rewards/b/mean": 0.2}
            for s in range(1, 5)] + [{"step": 4, "kind": "eval", "eval/loss": 1.5}]
    df = M.to_long_frame(recs, ["train/loss", "eval/loss"], smooth=0.5)
    assert list(df.columns) == ["step", "value", "series"]
    assert set(df.series) == {"train/loss", "train/loss (smoothed)", "eval/loss", "eval/loss (smoothed)"}
    raw = df[df.series == "train/loss"]
    assert raw.step.tolist() == [1, 2, 3, 4] and raw.value.tolist() == [4.0, 2.0, 4 / 3, 1.0]
    sm = df[df.series == "train/loss (smoothed)"].value.tolist()
    assert sm[0] == 4.0 and sm[1] == pytest.approx((0.25 * 4 + 0.5 * 2) / 0.75)
    g = M.to_long_frame(recs, ["rewards/*/mean"])
    assert sorted(set(g.series)) == ["rewards/a/mean", "rewards/b/mean"]
    empty = M.to_long_frame(recs, ["nothing/here"])
    assert empty.empty and list(empty.columns) == ["step", "value", "series"]
    assert M.ema([None, 2.0], 0.3) == [None, pytest.approx(2.0)]


def test_map_log_keys():
    assert M.map_log_keys({"train_runtime": 3.0, "train_loss": 0.5, "epoch": 1.0}) == (
        "summary", {"summary/train_runtime": 3.0, "summary/train_loss": 0.5, "epoch": 1.0})
    kind, vals = M.map_log_keys({"reward": 0.4, "reward_std": 0.1, "completions/mean_length": 12.0})
    assert kind == "train" and vals == {"train/reward": 0.4, "train/reward_std": 0.1, "completions/mean_length": 12.0}


# --------------------------------------------------------------------------- callbacks
def test_metrics_callback_with_fake_state(tmp_path, monkeypatch):
    from transformers import TrainerControl, TrainerState

    clock = [1000.0]
    monkeypatch.setattr(M.time, "time", lambda: clock[0])
    cb = M.MetricsCallback(tmp_path, progress_every_s=0.0)
    state = TrainerState()
    state.max_steps, state.global_step = 10, 2  # resumed at step 2
    cb.on_train_begin(None, state, TrainerControl())
    clock[0] += 10.0
    state.global_step, state.epoch = 4, 0.4
    cb.on_log(None, state, TrainerControl(), logs={"loss": 1.25, "grad_norm": 0.5, "learning_rate": 2e-4,
                                                   "mean_token_accuracy": 0.3, "num_tokens": 1000.0, "epoch": 0.4})
    clock[0] += 10.0
    state.global_step = 6
    cb.on_log(None, state, TrainerControl(), logs={"loss": 1.0, "num_tokens": 3000.0})
    cb.on_log(None, state, TrainerControl(), logs={"eval_loss": 1.5, "eval_mean_token_accuracy": 0.4})
    cb.on_step_end(None, state, TrainerControl())
    prog = json.loads((tmp_path / "progress.json").read_text())
    assert prog["step"] == 6 and prog["max_steps"] == 10 and prog["fraction"] == 0.6
    # 4 steps done in this process in 20 s (the 2 restored steps do not count) → 4 left = 20 s.
    assert prog["phase"] == "train" and prog["elapsed_s"] == 20.0
    assert prog["steps_per_s"] == 0.2 and prog["eta_s"] == 20.0
    cb.on_train_end(None, state, TrainerControl())
    assert json.loads((tmp_path / "progress.json").read_text())["phase"] == "done"

    recs = M.read_metrics(tmp_path)
    assert [(r["step"], r["kind"]) for r in recs] == [(4, "train"), (6, "train"), (6, "eval")]
    assert {"train/loss", "train/grad_norm", "train/learning_rate", "train/mean_token_accuracy", "epoch"} <= set(recs[0])
    assert "train/tokens_per_s" not in recs[0]
    assert recs[1]["train/tokens_per_s"] == 200.0  # 2000 tokens in 10 s
    assert recs[2]["eval/loss"] == 1.5 and recs[2]["eval/mean_token_accuracy"] == 0.4

    # Non-main processes write nothing.
    state.is_world_process_zero = False
    cb.on_log(None, state, TrainerControl(), logs={"loss": 9.0})
    assert len(M.read_metrics(tmp_path)) == 3


def test_rate_counts_from_the_first_step_end_and_the_log_line_says_it(tmp_path, monkeypatch):
    """A slow start (loading, a step-0 evaluation, the first step) does not make the rate look
    slow; the CLI line carries the measured steps/s and the time left from it."""
    from transformers import TrainerControl, TrainerState

    from studio.engine.train.callbacks import progress_line, rate_text

    clock = [1000.0]
    monkeypatch.setattr(M.time, "time", lambda: clock[0])
    lines = []
    cb = M.MetricsCallback(tmp_path, progress_every_s=0.0, log_fn=lines.append)
    state = TrainerState()
    state.max_steps, state.global_step = 100, 0
    cb.on_train_begin(None, state, TrainerControl())
    clock[0] += 30.0  # step-0 evaluation + first step
    state.global_step = 1
    cb.on_step_end(None, state, TrainerControl())
    clock[0] += 4.0  # then 2 steps/s
    state.global_step = 9
    cb.on_step_end(None, state, TrainerControl())
    cb.on_log(None, state, TrainerControl(), logs={"loss": 0.51234})
    prog = json.loads((tmp_path / "progress.json").read_text())
    assert prog["steps_per_s"] == 2.0 and prog["eta_s"] == 45.5  # 91 steps left at 2 steps/s
    assert lines == ["step 9/100 (9 %) · 2.00 steps/s · 0:46 left · loss 0.512"]
    cb.on_log(None, state, TrainerControl(), logs={"eval_loss": 1.0})
    assert len(lines) == 1  # evaluation logs print no progress line
    assert rate_text(0.4) == "2.5 s/step" and rate_text(None) == ""
    assert progress_line({"step": 3, "max_steps": 0}, {"train/reward": 0.25}) == "step 3 · reward 0.250"


def test_step_clock_phases_are_exclusive_and_add_up_to_the_step():
    from studio.engine.train.steptime import StepClock, make_step_time_callback, metrics_sink, step_record

    now = [0.0]
    clock = StepClock(lambda: now[0])
    with clock.phase("update"):
        now[0] += 1.0
        with clock.phase("generate"):  # nested: pauses "update"
            now[0] += 3.0
        now[0] += 0.5
    with clock.phase("save"):
        now[0] += 0.25
    assert clock.take() == {"update": 1.5, "generate": 3.0, "save": 0.25}
    assert clock.take() == {}
    rec = step_record(5.0, {"update": 1.5, "generate": 3.0})
    assert rec == {"time/step_s": 5.0, "time/update_s": 1.5, "time/generate_s": 3.0, "time/other_s": 0.5}
    from collections import defaultdict

    sink_into = {"train": defaultdict(list)}
    cb = make_step_time_callback(clock, metrics_sink(sink_into))
    cb.on_train_begin(None, None, None)
    with clock.phase("update"):
        now[0] += 2.0
    cb.on_step_end(None, None, None)
    got = sink_into["train"]
    assert got["time/update_s"] == [2.0] and len(got["time/step_s"]) == 1 and len(got["time/other_s"]) == 1


def test_graceful_stop_with_a_real_trainer(tmp_path):
    """SIGINT mid-training → StopFlagCallback → checkpoint saved at that step, train() returns."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def forward(self, x, labels):
            loss = torch.nn.functional.mse_loss(self.lin(x).squeeze(-1), labels)
            return {"loss": loss}

    data = [{"x": torch.randn(4), "labels": torch.tensor(1.0)} for _ in range(64)]

    class SignalAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)  # what JobManager.stop sends

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        flag = M.install_graceful_stop()
        stop_cb = M.StopFlagCallback(flag)
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=50, per_device_train_batch_size=2,
                                 logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                                 disable_tqdm=True, dataloader_num_workers=0)
        # Order matters: SignalAt fires first, then the stop callback sees the flag in the same step end.
        trainer = Trainer(model=Tiny(), args=args, train_dataset=data,
                          callbacks=[SignalAt(), stop_cb, M.MetricsCallback(tmp_path)])
        with R.track_run(tmp_path, "sft", stop_flag=flag):
            trainer.train()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert flag.is_set() and flag.signal_name == "SIGINT"
    assert stop_cb.stopped and stop_cb.stopped_at == 3 and trainer.state.global_step == 3
    ckpt = R.find_last_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.name == "checkpoint-3"
    assert R.read_status(tmp_path)["status"] == "stopped"
    recs = M.read_metrics(tmp_path)
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3]
    assert all("train/loss" in r for r in recs if r["kind"] == "train")
    assert any(r["kind"] == "summary" for r in recs)
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 3


def test_second_signal_interrupts():
    old = signal.getsignal(signal.SIGINT)
    try:
        flag = M.install_graceful_stop(signals=(signal.SIGINT,))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert flag.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGINT, old)


# --------------------------------------------------------------------------- run folders
def test_new_run_dir_names(tmp_path):
    a = R.new_run_dir(tmp_path, "sft", "My run: lr=2e-4/../x")
    b = R.new_run_dir(tmp_path, "sft", "My run: lr=2e-4/../x")
    assert re.fullmatch(r"\d{8}-\d{6}-sft-My-run-lr-2e-4-x", a.name), a.name
    assert a.is_dir() and a.parent == tmp_path
    assert b != a and b.name.startswith(a.name)  # same second → suffix
    assert R.new_run_dir(tmp_path, "rl", None).name.endswith("-rl-run")
    with pytest.raises(R.InputError, match="lower-case word"):
        R.new_run_dir(tmp_path, "../sft", "x")


def test_status_and_track_run(tmp_path):
    st = R.write_status(tmp_path, "running", pid=os.getpid(), started=1.0)
    assert st["status"] == "running" and R.effective_status(st) == "running"
    assert R.effective_status({"status": "running", "pid": 999_999_999}) == "failed"
    with pytest.raises(ValueError):
        R.write_status(tmp_path, "exploded")
    with pytest.raises(TrainingError) as ei:
        with R.track_run(tmp_path, "sft"):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
    assert ei.value.__cause__ is None and "\n" not in str(ei.value)
    st = R.read_status(tmp_path)
    assert st["status"] == "failed" and st["error"].startswith("Training ran out of memory") and st["ended"]
    assert "Tried to allocate 2 GiB" in (tmp_path / R.ERROR_FILE).read_text()
    with pytest.raises(InputError, match="bad value"):  # a user error passes through as it is
        with R.track_run(tmp_path, "sft"):
            raise InputError("bad value")
    assert R.read_status(tmp_path)["error"] == "bad value"
    with R.track_run(tmp_path, "sft"):
        pass
    assert R.read_status(tmp_path)["status"] == "finished"


def _fake_run(root: Path, name: str, *, status: str, steps: int, key="train/loss", ckpts=(), adapter=False,
              partial_ckpt=None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    R.write_status(run, status, kind=name.split("-")[2], exit_code=0)
    with M.MetricsWriter(run) as w:
        for s in range(1, steps + 1):
            w.log(s, **{key: 1.0 / s})
    (run / "config.yaml").write_text("model: embedded\n")
    for n in ckpts:
        (run / "checkpoints" / f"checkpoint-{n}").mkdir(parents=True)
        (run / "checkpoints" / f"checkpoint-{n}" / "trainer_state.json").write_text("{}")
    if partial_ckpt:
        (run / "checkpoints" / f"checkpoint-{partial_ckpt}").mkdir(parents=True)  # no trainer_state.json
    if adapter:
        (run / "adapter").mkdir()
        (run / "adapter" / "adapter_config.json").write_text("{}")
    return run


def test_find_last_checkpoint_ignores_incomplete(tmp_path):
    run = _fake_run(tmp_path, "20250101-000000-sft-a", status="stopped", steps=3, ckpts=(2, 10), partial_ckpt=12)
    assert R.find_last_checkpoint(run).name == "checkpoint-10"
    (run / "checkpoint-11").mkdir()
    (run / "checkpoint-11" / "trainer_state.json").write_text("{}")
    assert R.find_last_checkpoint(run) == run / "checkpoint-11"
    assert R.find_last_checkpoint(tmp_path / "nothing") is None


def test_list_runs_and_cli(tmp_path, capsys):
    _fake_run(tmp_path, "20250101-000000-sft-a", status="finished", steps=4, adapter=True, ckpts=(4,))
    _fake_run(tmp_path, "20250102-000000-rl-b", status="stopped", steps=2, key="train/reward")
    (tmp_path / ".job.lock").write_text("{}")
    (tmp_path / "notes").mkdir()  # not a run
    infos = R.list_runs(tmp_path)
    assert [i.id for i in infos] == ["20250102-000000-rl-b", "20250101-000000-sft-a"]
    rl, sft = infos
    assert (rl.kind, rl.name, rl.status, rl.step, rl.reward) == ("rl", "b", "stopped", 2, 0.5)
    assert (sft.kind, sft.status, sft.step, sft.loss) == ("sft", "finished", 4, 0.25)
    assert sft.adapter.endswith("adapter") and sft.last_checkpoint.endswith("checkpoint-4")
    assert [i.id for i in R.list_runs(tmp_path, kind="sft")] == [sft.id]
    assert R.list_runs(tmp_path / "none") == []

    from studio.cli import main

    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "kind", "status", "step", "loss/reward"]
    assert out[2].split() == ["20250102-000000-rl-b", "rl", "stopped", "2", "reward", "0.5"]
    assert out[3].split() == ["20250101-000000-sft-a", "sft", "finished", "4", "loss", "0.25"]
    assert main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[1]["metrics"]["train/loss"] == 0.25 and data[1]["adapter"].endswith("adapter")
    assert main(["runs", "--runs-dir", str(tmp_path / "empty")]) == 0
    assert "No runs" in capsys.readouterr().out


# --------------------------------------------------------------------------- Runs tab (UI)
def test_runs_tab_builds_and_shows_a_run(tmp_path):
    import gradio as gr

    from studio.ui.context import AppContext
    from studio.ui.tabs import runs as runs_tab

    _fake_run(tmp_path, "20250101-000000-sft-a", status="finished", steps=4, adapter=True, ckpts=(4,))
    _fake_run(tmp_path, "20250102-000000-rl-b", status="failed", steps=2, key="train/reward")
    R.write_status(tmp_path / "20250102-000000-rl-b", error="CUDA out of memory <script>")
    ctx = AppContext(runs_dir=tmp_path)
    with gr.Blocks() as demo:
        with gr.Tab("Runs"):
            runs_tab.build(ctx)
    cfg = demo.get_config_file()
    types = [c["type"] for c in cfg["components"]]
    assert types.count("nativeplot") == 5 and "dataframe" in types and types.count("dropdown") == 2
    api = {d.get("api_name") for d in cfg["dependencies"]}
    assert {"runs_refresh", "runs_select", "runs_export", "runs_overlay"} <= api

    rows = runs_tab.table_rows(tmp_path)
    assert [r[:5] for r in rows] == [["20250102-000000-rl-b", "rl", "failed", "2", "reward 0.5"],
                                     ["20250101-000000-sft-a", "sft", "finished", "4", "loss 0.25"]]
    run_dir, status, info, config, _ = runs_tab.run_details(tmp_path, "20250102-000000-rl-b")
    assert run_dir.endswith("rl-b") and status.startswith("failed") and "CUDA out of memory" in status
    assert json.loads(info)["metrics"]["train/reward"] == 0.5 and config == "model: embedded\n"
    assert runs_tab.run_details(tmp_path, "../" + tmp_path.name)[0] == ""  # cannot leave runs_dir
    assert runs_tab.run_details(tmp_path, "")[0] == ""


def test_runs_tab_held_out_curve_overlay_and_list_signature(tmp_path):
    """Issue 28.11: an SFT run's held-out skill curve (``kind: "skill"`` records) and an RL
    run's held-out accuracy share the Runs tab's held-out chart; a second run overlays its
    curves with a colour per run; the run list is re-read only when the folder changed."""
    from studio.ui.components import GENERAL_CURVES, curve_frames, expected_series
    from studio.ui.components import x_range
    from studio.ui.overlay import PAIRS, overlay_key, overlay_updates, run_tag
    from studio.ui.tabs import runs as runs_tab

    sft = _fake_run(tmp_path, "20250101-100000-sft-a", status="finished", steps=4)
    with M.MetricsWriter(sft) as w:  # what SkillEvalCallback writes (studio.engine.train.skill_eval)
        for step, fmt, acc in ((0, 0.0, 0.0), (4, 0.9, 0.6)):
            w.log_dict(step, {"skill/format_rate": fmt, "skill/accuracy": acc, "skill/n": 60}, kind="skill")
    rl = _fake_run(tmp_path, "20250102-110000-rl-b", status="finished", steps=2, key="rewards/mean")
    with M.MetricsWriter(rl) as w:
        w.log(2, kind="eval", **{"eval/accuracy": 0.7})
    held = [i for i, g in enumerate(GENERAL_CURVES) if "skill/accuracy" in g.keys][0]
    frame = curve_frames(sft, GENERAL_CURVES)[held]
    acc = frame[frame["series"] == "skill/accuracy"]
    assert acc["step"].tolist() == [0, 4] and acc["value"].tolist() == [0.0, 0.6]
    assert "eval/accuracy" in GENERAL_CURVES[held].keys  # RL's held-out accuracy on the same chart

    names = [expected_series(g.keys, g.smooth) for g in GENERAL_CURVES]
    ups = overlay_updates(str(sft), str(rl), curve_frames(sft, GENERAL_CURVES), names, curve_frames(rl, GENERAL_CURVES))
    assert run_tag(rl) == "b 11:00:00" and run_tag(tmp_path / "x") == "x"
    value, cmap, legend = ups[held]["value"], ups[held]["color_map"], ups[held]["colors_in_legend"]
    assert set(value["series"]) == set(cmap)  # every line has a colour
    assert legend == ["skill format_rate", "skill accuracy", "eval accuracy"]  # the first run's; one row fits
    assert cmap["skill accuracy"] == PAIRS[1][0] and cmap["skill accuracy · b 11:00:00"] == PAIRS[1][1]
    rl_acc = value[value["series"] == "eval accuracy · b 11:00:00"]
    assert rl_acc["value"].iloc[-1] == 0.7
    assert len({tuple(u["x_lim"]) for u in ups}) == 1  # every chart on one x range, the longer run's
    assert ups[0]["x_lim"][1] >= max(x_range(sft)[1], x_range(rl)[1])
    single = overlay_updates(str(sft), None, curve_frames(sft, GENERAL_CURVES), names, None)
    # one run: its own colours, still named in a map (gradio cannot take a map back with None)
    assert set(single[held]["color_map"]) == set(single[held]["value"]["series"]) == set(legend)
    assert single[held]["color_map"].items() <= cmap.items()
    assert overlay_key(str(sft), str(rl)).startswith(f"Dark lines: `{sft.name}`") and rl.name in overlay_key(sft, rl)
    # issue 28.12 in the Runs tab: the charts a run has no point for say so (not a lone "0"),
    # and the x range reaches the browser with the values (it was dropped: a 2-step run read "1 2 2")
    import gradio as gr

    from studio.ui.overlay import colour_updates, value_updates

    titles = [g.title for g in GENERAL_CURVES]
    ups = overlay_updates(str(sft), None, curve_frames(sft, GENERAL_CURVES), names, None, titles=titles)
    reward = [i for i, g in enumerate(GENERAL_CURVES) if g.title == "Reward"][0]
    assert ups[reward]["value"] is None and ups[reward]["show_label"] is True and "color_map" not in ups[reward]
    assert ups[held]["show_label"] is False and len(ups[held]["value"])
    firsts = value_updates(ups)
    assert all(u["x_lim"] == [0, x_range(sft)[1]] for u in firsts) and not any("color_map" in u for u in firsts)
    assert colour_updates(ups)[reward] == gr.skip() and colour_updates(ups)[held]["color_map"]
    assert overlay_key(str(sft), "") == overlay_key(str(sft), str(sft)) == ""

    sig = runs_tab.list_signature(tmp_path)
    assert [n for n, _ in sig] == [sft.name, rl.name] and runs_tab.list_signature(tmp_path) == sig
    (tmp_path / "not-a-run").mkdir()  # no status, config or metrics: not listed, no change
    assert runs_tab.list_signature(tmp_path) == sig
    new = _fake_run(tmp_path, "20250103-000000-sft-c", status="running", steps=0)
    assert runs_tab.list_signature(tmp_path) != sig and runs_tab.list_signature(tmp_path)[-1][0] == new.name
    assert runs_tab.list_signature(tmp_path / "missing") == ()


def test_resume_line_supersedes_the_lost_steps(tmp_path):
    """Steps 151-184 written, crash, resume from checkpoint-150: one point per step, the redone ones."""
    path = tmp_path / "metrics.jsonl"
    reader = M.MetricsReader(path)
    with M.MetricsWriter(path) as w:
        w.log(0, kind="eval", **{"eval/accuracy": 0.1})
        for s in range(1, 185):
            w.log(s, **{"train/loss": 1.0})
        w.log(180, kind="eval", **{"eval/accuracy": 0.5})
    assert len(reader.read()) == 186
    with M.MetricsWriter(path) as w:
        w.log_dict(150, {}, kind=M.RESUME_KIND)
        for s in range(151, 171):
            w.log(s, **{"train/loss": 2.0})
    for recs in (M.read_metrics(path), reader.read()):
        train = [r for r in recs if r["kind"] == "train"]
        assert [r["step"] for r in train] == list(range(1, 171))
        assert {r["train/loss"] for r in train if r["step"] > 150} == {2.0}
        assert [r["step"] for r in recs if r["kind"] == "eval"] == [0]  # the lost step-180 eval is gone
        assert not any(r["kind"] == M.RESUME_KIND for r in recs)
    assert M.last_values(M.read_metrics(path))["step"] == 170


def test_a_stopped_run_keeps_its_end_time(tmp_path):
    """Issue: "took" kept counting while a run sat stopped — a later write restating the final
    status (forced stop, poller) moved ``ended``. A new start then a stop gets a new end time."""
    import time

    from studio.engine.train import runs as R

    R.write_status(tmp_path, "running", started=time.time())
    first = R.write_status(tmp_path, "stopped")["ended"]
    time.sleep(0.05)
    assert R.write_status(tmp_path, "stopped", forced=True)["ended"] == first
    R.write_status(tmp_path, "running", ended=None)
    time.sleep(0.05)
    assert R.write_status(tmp_path, "stopped")["ended"] > first


def test_every_chart_names_its_y_axis_and_fractions_are_percent():
    """Issue 28.12: every y axis read "value" and fractions ran 0–1 with clipped ticks.
    Every SFT/RL/Runs chart now names its quantity; a chart of fractions is 0–100 %."""
    from studio.ui.components import GENERAL_CURVES, RL_CURVES, SFT_CURVES, chart_options, y_axis
    from studio.ui.i18n import CATALOG
    from studio.ui.tabs.rl import PLOTS

    groups = [g.keys for g in SFT_CURVES + RL_CURVES + GENERAL_CURVES] + [p[1] for p in PLOTS]
    for keys in groups:
        key, _ = y_axis(keys)
        assert key in CATALOG
    assert y_axis(["skill/format_rate", "skill/accuracy"]) == ("axis.percent", True)
    assert y_axis(["curriculum/tier_weight/*"]) == ("axis.percent", True)
    assert y_axis(["train/learning_rate"]) == ("axis.lr", False)
    assert y_axis(["train/loss", "eval/loss"]) == ("axis.loss", False)
    assert not [k for k in groups if y_axis(k)[0] == "axis.value"]
    assert y_axis(["curriculum/zero_variance_frac", "curriculum/expansion_ema"]) == ("axis.ratio", False)
    pct = chart_options("x", keys=["eval/accuracy"])
    assert pct["y_lim"] == [0, 1] and pct["y_axis_format"] == ".0%"
    lr = chart_options("x", keys=["train/learning_rate"])
    assert "y_lim" not in lr and lr["y_axis_format"] == "~e"
    assert chart_options("x", keys=["rewards/mean"])["y_axis_format"] == "~r"  # 0.8, not "800m"
    # no fixed precision on any other axis: d3 takes the digits the drawn ticks need
    # (a fixed ".3~g" read "6.51 6.51 6.51" for a loss of 6.512 → 6.507; browser check:
    # tests/test_browser_curves.py::test_a_flat_loss_reads_distinct_y_ticks)
    for keys in groups:
        fmt = chart_options("x", keys=keys)["y_axis_format"]
        assert fmt == ".0%" if y_axis(keys)[1] else re.fullmatch(r"~[res]", fmt), (keys, fmt)


def test_charts_share_the_runs_x_range_in_whole_steps_and_say_when_empty(tmp_path):
    """Issue 28.12: steps read 1.5, 2.5; the RL charts of one run had three x ranges (KL 1–11,
    tier weights 0–22, others 0–20); an empty chart showed a lone "0". Every chart of a run
    now spans [0, the run's planned steps] with whole-number ticks, and an empty one is
    gradio's empty plot, labelled "<title> · no data yet"."""
    from studio.engine.train.metrics import MetricsWriter, to_long_frame
    from studio.ui import components as C
    from studio.ui.i18n import CATALOG, tr

    assert C.chart_options("Loss", keys=["train/loss"])["x_axis_format"] == "d"  # Vega-Lite: tickMinStep 1
    run = tmp_path / "run"
    run.mkdir()
    assert C.x_range(run) == [0, C.MIN_X_SPAN] and C.x_range(None) == [0, C.MIN_X_SPAN]
    with MetricsWriter(run) as w:
        for s in range(1, 12):
            w.log(s, **{"train/loss": 1.0 / s, **({"kl/probe": 0.01 * s} if s % 5 == 1 else {})})
    assert C.x_range(run) == [0, 11]  # no plan known: the last logged step
    (run / "config.yaml").write_text("model: embedded\nmax_steps: 20\n")
    assert C.planned_steps(run) == 20 and C.x_range(run) == [0, 20]
    (run / "config.yaml").write_text("model: embedded\nmax_steps: -1\n")  # a run in epochs
    assert C.x_range(run) == [0, 11]
    (run / "progress.json").write_text(json.dumps({"step": 11, "max_steps": 40, "phase": "train"}))
    assert C.x_range(run) == [0, 40]  # the trainer's own count wins
    # the same range for every chart of the run, whatever its metric logged
    recs = C._records(run)
    loss = C.chart_update(to_long_frame(recs, ["train/loss"]), ["train/loss"], "Loss", C.x_range(run))
    kl = C.chart_update(to_long_frame(recs, ["kl/*"]), ["kl/probe"], "KL", C.x_range(run))
    assert loss["x_lim"] == kl["x_lim"] == [0, 40]
    assert loss["show_label"] is False and len(loss["value"]) == 11 + 1  # + the legend's leading row
    # no point yet: no value (gradio's empty plot), and a label that says so, in both languages
    empty = C.chart_update(to_long_frame(recs, ["train/grad_norm"]), ["train/grad_norm"], "Grad norm", [0, 40])
    assert empty["value"] is None and empty["show_label"] is True and empty["x_lim"] == [0, 40]
    key = empty["label"].key
    assert key == "curve_empty.grad_norm"
    assert CATALOG[key] == {lang: tr("chart.no_data", lang, title=CATALOG["curve.grad_norm"][lang])
                            for lang in ("en", "zh")}
    assert CATALOG[key]["en"] == "Grad norm · no data yet" and "暂无数据" in CATALOG[key]["zh"]
    assert all(f"curve_empty.{k[len('curve.'):]}" in CATALOG for k in CATALOG if k.startswith("curve."))

