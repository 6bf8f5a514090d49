"""RL tab: form → config/CLI equivalence, dashboard data, escaping, and the tab through a live app."""

from __future__ import annotations

import argparse
import json
import time

import pytest

from tests.conftest import SAMPLE_DATA

FORM = dict(data=str(SAMPLE_DATA / "rl" / "prompts.jsonl"), eval_data=str(SAMPLE_DATA / "rl" / "eval.jsonl"),
            model="embedded", adapter="", mode="rlcs", reward_functions=["accuracy"], num_generations=4,
            batch_size=8, max_steps=12, learning_rate=2e-4, thinking_budget=32, answer_budget=16, lora_rank=8,
            lora_alpha=16, offline_grading=True, cold_start=False, use_vllm=False, eval_every=4, seed=3)


def test_form_errors_name_the_field():
    from studio.errors import ConfigError
    from studio.ui.tabs.rl import form_to_config

    with pytest.raises(ConfigError, match="at least 2"):
        form_to_config(**{**FORM, "num_generations": 1})
    with pytest.raises(ConfigError, match="must be divisible by num_generations"):
        form_to_config(**{**FORM, "batch_size": 6})
    with pytest.raises(ConfigError, match="valid names: accuracy"):
        form_to_config(**{**FORM, "reward_functions": ["nope"]})


def test_cli_command_builds_the_same_config(tmp_path):
    """The command shown under the form, run through the real CLI parser, gives the same config."""
    import shlex

    from studio.cli import build_parser
    from studio.commands.rl import prepare
    from studio.ui.tabs.rl import cli_command, form_to_config

    cfg = form_to_config(**FORM)
    argv = shlex.split(cli_command(cfg))[1:] + ["--runs-dir", str(tmp_path), "--dry-run"]
    args = build_parser().parse_args(argv)
    got, run_dir = prepare(args)
    want = cfg.to_dict()
    got_d = got.to_dict()
    want["output_dir"] = got_d["output_dir"] = ""
    assert got_d == want
    assert cli_command(cfg, str(run_dir)) == f"studio rl --config {run_dir / 'config.yaml'}"
    # issue 28.9: the form's k (offline grading samples) and p (cold-start pass rate) reach the
    # config, and the command shown gives the same config
    for extra in ({"offline_samples": 8}, {"cold_start": True, "offline_grading": False, "initial_pass_rate": 0.3}):
        cfg = form_to_config(**{**FORM, **extra})
        if "offline_samples" in extra:
            assert cfg.curriculum.offline_samples == 8
        else:
            assert cfg.curriculum.initial_pass_rate == 0.3
        got, _ = prepare(build_parser().parse_args(shlex.split(cli_command(cfg))[1:] +
                                                   ["--runs-dir", str(tmp_path), "--dry-run"]))
        assert got.to_dict()["curriculum"] == cfg.to_dict()["curriculum"]


def test_rollouts_table_escapes_and_collapses_thinking(tmp_path):
    from studio.ui.tabs.rl import read_rollouts, rollouts_html

    img = SAMPLE_DATA / "rl" / "images"
    first = sorted(img.iterdir())[0]
    rows = [{"step": 3, "prompt": "<b>Q</b>", "image": str(first), "answer": "2",
             "completion": "<think>x<script>alert(1)</script></think><answer><|begin_of_box|>2<|end_of_box|>"
                           "</answer><|user|>", "reward": 1.0, "tier": "medium", "forced": True},
            {"step": 2, "prompt": "old", "completion": "", "reward": 0.0, "tier": "hard"}]
    (tmp_path / "rollouts.jsonl").write_text("\n".join(json.dumps(r) for r in rows[::-1]) + "\n{torn")
    got = read_rollouts(tmp_path)
    assert [r["step"] for r in got] == [3]  # last step only; the torn line is skipped
    h = rollouts_html(got)
    assert "<script>" not in h and "&lt;script&gt;" in h and "&lt;b&gt;Q&lt;/b&gt;" in h
    assert "<details><summary>thinking" in h and "data:image/png;base64," in h
    assert "<|user|>" not in h and "1.00" in h and "forced" in h and "medium" in h


def test_rollouts_table_shows_redone_steps_once(tmp_path):
    """After a crash and Resume from checkpoint-2, the redone step 3 replaces the lost one's rows
    (a resume line, as in metrics.jsonl); a torn row the crash left is skipped."""
    from studio.engine.train.metrics import MetricsWriter
    from studio.ui.tabs.rl import read_rollouts

    lost = [{"step": s, "prompt": f"p{s}", "completion": "lost" if s == 3 else ""} for s in (1, 2, 3)]
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lost) + '{"step": 3, "pro')
    with MetricsWriter(tmp_path / "rollouts.jsonl") as w:
        w.log_dict(2, {}, kind="resume")
        w.log_dict(3, {"prompt": "p3", "completion": "redone"}, kind="rollout")
    got = read_rollouts(tmp_path, last_steps=10)
    assert [(r["step"], r["completion"]) for r in got] == [(1, ""), (2, ""), (3, "redone")]


def test_curve_frames_cover_every_plot():
    from studio.ui.tabs.rl import PLOTS, curve_frames

    rec = {"step": 1, "kind": "train", "rewards/mean": 0.5, "rewards/std": 0.1, "eval/accuracy": 0.3,
           "rollout/format_correct": 0.9, "rollout/forced_answer": 0.1, "rollout/truncated": 0.0,
           "curriculum/tier_pass_rate/hard": 0.2, "curriculum/tier_count/hard": 3.0,
           "curriculum/tier_weight/hard": 0.4, "curriculum/tier_weight/easy": 0.6,
           "curriculum/zero_variance_frac": 0.5, "curriculum/expansion_ema": 1.3,
           "curriculum/effective_batch": 5.0, "completions/length_mean": 10.0, "completions/length_max": 20.0,
           "kl/probe": 0.01, "train/loss": 0.0, "train/grad_norm": 1.0, "train/learning_rate": 1e-4}
    frames = curve_frames([rec, {**rec, "step": 2}, {"step": 2, "kind": "summary", "train/loss": 9.0}])
    assert len(frames) == len(PLOTS)
    for (title, _, _), df in zip(PLOTS, frames):
        assert len(df) >= 2, title
    reward = frames[0]
    assert set(reward["series"]) == {"rewards/mean", "rewards/mean+std", "rewards/mean-std"}
    assert reward[reward.series == "rewards/mean+std"]["value"].iloc[0] == pytest.approx(0.6)
    assert set(frames[5]["series"]) == {"hard", "easy"}  # stacked tier weights, short names
    assert 9.0 not in list(frames[10]["value"])  # summary lines are not curve points


def test_stacked_tier_weights_add_up_to_one_at_every_step():
    """The legend's leading rows must not stack on the first bar (it read 2.0 or more, not 1.0)."""
    from studio.engine.curriculum import TIER_NAMES
    from studio.ui.components import plot_value
    from studio.ui.tabs.rl import curve_frames

    recs = [{"step": s, "kind": "train", "curriculum/tier_weight/hard": 0.4, "curriculum/tier_weight/easy": 0.6}
            for s in (1, 2)]
    value = plot_value(curve_frames(recs)[5], TIER_NAMES, stacked=True)
    assert value.groupby("step")["value"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert list(value["series"][:len(TIER_NAMES)]) == list(TIER_NAMES)  # the legend still names every tier


def _launch(ctx):
    import gradio as gr

    from studio.ui.tabs import rl as tab

    with gr.Blocks() as demo:
        tab.build(ctx)
    demo.queue()
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    return demo


def test_tab_builds_alone_and_answers_through_the_api(tmp_path):
    from gradio_client import Client

    from studio.ui.context import AppContext

    run = tmp_path / "runs" / "20260101-000000-rl-demo"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "kind": "train", "rewards/mean": 0.25,
                                                   "rewards/std": 0.1, "train/loss": 0.5}) + "\n")
    (run / "format_gate.json").write_text(json.dumps({"rate": 0.1, "warning": "FORMAT GATE: use the SFT tab"}))
    demo = _launch(AppContext(runs_dir=tmp_path / "runs"))
    try:
        client = Client(demo.local_url, verbose=False)
        with pytest.raises(Exception, match="No job is running"):
            client.predict(api_name="/rl_stop")
        reward_plot, tier_plot, table, notes = client.predict(str(run), api_name="/rl_refresh")
        assert "FORMAT GATE" in notes and "SFT tab" in notes
        # each plot comes as an update: its value, and the run's x range (issue 28.12)
        mean = [row for row in reward_plot["value"]["data"] if row[2] == "mean reward"]
        assert [row[:2] for row in mean] == [[1.0, 0.25], [1.0, 0.25]], reward_plot  # legend row + the point
        assert reward_plot["x_lim"] == tier_plot["x_lim"] == [0, 3] and reward_plot["show_label"] is False
        # no tier weights logged: gradio's empty plot, labelled so (not axes reading a lone "0")
        assert tier_plot["value"] is None and "curve_empty.tier_sampling_weights_stacked" in tier_plot["label"]
        assert "No rollouts yet" in table
        with pytest.raises(Exception, match="No run to resume"):
            client.predict(api_name="/rl_resume")
        yaml_text, cli = client.predict(*[FORM[k] for k in ORDER], api_name="/rl_config")
        assert "mode: rlcs" in yaml_text and cli.startswith("studio rl --data ")
        bad, _ = client.predict(*[{**FORM, "num_generations": 1}[k] for k in ORDER], api_name="/rl_config")
        assert "at least 2" in bad
    finally:
        demo.close()


ORDER = ["data", "eval_data", "model", "adapter", "mode", "reward_functions", "num_generations",
         "batch_size", "max_steps", "learning_rate", "thinking_budget", "answer_budget", "lora_rank",
         "lora_alpha", "offline_grading", "cold_start", "use_vllm", "eval_every", "seed"]


@pytest.mark.slow
def test_start_the_sample_run_from_the_tab_and_watch_it_finish(tmp_path, monkeypatch):
    """The "done when" path: start the sample run from the tab, see curves and rollouts."""
    from gradio_client import Client

    from studio.engine.train.runs import read_status
    from studio.ui.context import AppContext

    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    demo = _launch(AppContext(runs_dir=tmp_path / "runs"))
    try:
        client = Client(demo.local_url, verbose=False)
        form = {**FORM, "num_generations": 2, "batch_size": 4, "max_steps": 3, "thinking_budget": 6,
                "answer_budget": 3, "offline_grading": False, "eval_every": 2}
        out = client.predict(*[form[k] for k in ORDER], api_name="/rl_start")
        [run] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        assert out[0].startswith("running") and "studio rl --config" in out[2] and run.name in out[2]
        deadline = time.time() + 240
        while time.time() < deadline and (read_status(run).get("status") in (None, "running")
                                          or (tmp_path / "runs" / ".job.lock").exists()):
            time.sleep(1)
        assert read_status(run)["status"] == "finished", (run / "train.log").read_text()[-2000:]
        reward_plot, tier_plot, table, notes = client.predict(str(run), api_name="/rl_refresh")
        assert reward_plot["data"] and tier_plot["data"] and "<table" in table
        assert (run / "adapter" / "adapter_config.json").is_file()
        msg = client.predict(api_name="/rl_try")  # the run folder is this session's gr.State
        assert "Chat" in msg
    finally:
        demo.close()


def test_prepare_rejects_both_or_neither(tmp_path):
    from studio.commands.rl import prepare
    from studio.errors import InputError

    ns = argparse.Namespace(config=None, data=None, resume=False)
    with pytest.raises(InputError, match="either --config"):
        prepare(ns)
