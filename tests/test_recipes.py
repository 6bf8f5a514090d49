"""Issue: the workshop learns through the product — recipes, skill curves, eval --adapter, the gate.

Fast checks only; each recipe end to end against its thresholds is ``-m slow`` (below) and
its measured numbers are in the README.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_DATA

WORKSHOP = SAMPLE_DATA / "workshop"


def _recipe(name: str) -> dict:
    from studio.config import read_yaml_mapping
    from studio.engine.train.runs import resolve_recipe_paths

    return resolve_recipe_paths(read_yaml_mapping(WORKSHOP / name), WORKSHOP / name)


def test_recipes_validate_and_point_into_the_workshop_folder():
    from studio.engine.train.rl import RLRunConfig
    from studio.engine.train.sft import SFTRunConfig

    sft = SFTRunConfig.from_dict(_recipe("sft.yaml"))
    sft.validate()
    assert sft.model.name_or_path == "toy-base" and sft.finetuning == "full" and sft.tasks
    assert Path(sft.data).is_relative_to(WORKSHOP) and Path(sft.eval_data).is_relative_to(WORKSHOP)
    rl = RLRunConfig.from_dict(_recipe("rl.yaml"))
    rl.validate()
    assert rl.model.name_or_path == "toy-thinking" and rl.curriculum.mode == "rlcs"
    assert Path(rl.data).is_file() and Path(rl.eval_data).is_file()
    rows = [json.loads(x) for x in Path(rl.eval_data).read_text().splitlines()]
    # issue 25: boxes of named objects, whose order toy-thinking's SFT mixed — held out (seed 7000)
    assert len(rows) == 480 and {r["family"] for r in rows} == {"grounding"} and {r["difficulty"] for r in rows} == {1}
    assert all(r["task_type"] == "grounding" and re.fullmatch(r"<image>Where is the \w+ \w+\?", r["prompt"]) for r in rows)
    assert all("-s7000-" in r["id"] for r in rows) and not any("trace" in r for r in rows)
    mixed = RLRunConfig.from_dict(_recipe("rl-mixed.yaml"))
    mixed.validate()
    assert mixed.curriculum.group_by == ["family", "difficulty"] and not mixed.curriculum.offline_grading
    fams = {(json.loads(x)["family"], json.loads(x)["difficulty"]) for x in Path(mixed.data).read_text().splitlines()}
    assert len(fams) == 15  # every family × level
    for folder in ("rl-shapes", "rl-boxes", "rl-mixed"):
        shipped = sum(p.stat().st_size for p in (WORKSHOP / folder).rglob("*") if p.is_file())
        assert shipped <= 5 * 1024 * 1024, folder


def test_a_recipe_starts_a_new_run_each_time_and_a_run_config_continues(tmp_path):
    from studio.cli import main

    recipe = tmp_path / "recipes" / "mine.yaml"
    recipe.parent.mkdir()
    (recipe.parent / "d.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>a</think><answer>b</answer>"}]}) + "\n")
    recipe.write_text("name: mine\nmodel: {name_or_path: embedded}\ndata: d.jsonl\nmax_steps: 2\n")
    runs = tmp_path / "runs"
    for _ in range(2):
        assert main(["sft", "--config", str(recipe), "--runs-dir", str(runs), "--dry-run"]) == 0
    made = sorted(runs.iterdir())
    assert len(made) == 2 and all("-sft-mine" in p.name for p in made)
    from studio.engine.train.sft import SFTRunConfig

    cfg = SFTRunConfig.from_yaml(made[0] / "config.yaml")
    assert cfg.data == str(recipe.parent / "d.jsonl") and cfg.output_dir == str(made[0])
    # the run folder's own config continues that run: no third folder
    assert main(["sft", "--config", str(made[0] / "config.yaml"), "--runs-dir", str(runs), "--dry-run"]) == 0
    assert len(list(runs.iterdir())) == 2


def test_rl_recipe_starts_a_new_run_and_defaults_to_the_tab_model(tmp_path):
    from studio.cli import main
    from studio.engine.train.rl import RLRunConfig

    runs = tmp_path / "runs"
    assert main(["rl", "--config", str(WORKSHOP / "rl.yaml"), "--runs-dir", str(runs), "--dry-run"]) == 0
    assert main(["rl", "--config", str(WORKSHOP / "rl.yaml"), "--runs-dir", str(runs), "--dry-run"]) == 0
    assert len(list(runs.iterdir())) == 2
    import shutil

    data = tmp_path / "p.jsonl"
    img = sorted((WORKSHOP / "rl-shapes" / "images").iterdir())[0]
    shutil.copy(img, tmp_path / img.name)  # media must sit inside the data file's folder
    data.write_text("".join(json.dumps({"prompt": f"<image>How many? ({i})", "images": [img.name], "answer": "1"}) + "\n"
                            for i in range(8)))
    assert main(["rl", "--data", str(data), "--runs-dir", str(tmp_path / "r2"), "--dry-run"]) == 0
    (run,) = list((tmp_path / "r2").iterdir())
    assert RLRunConfig.from_yaml(run / "config.yaml").model.name_or_path == "toy-thinking"


def test_format_gate_refuses_and_points_to_sft(tiny, tmp_path):
    """A model without the format: RL stops before any update, says to run SFT first and how to go on."""
    from studio.engine.train import rl
    from studio.engine.train.curriculum import CurriculumConfig

    model, processor = tiny
    import shutil

    data = tmp_path / "p.jsonl"
    shutil.copy(SAMPLE_DATA / "photos" / "coffee.jpg", tmp_path / "coffee.jpg")
    data.write_text("".join(json.dumps({"prompt": f"<image>How many cups? ({i})", "images": ["coffee.jpg"],
                                        "answer": "1", "task_type": "counting"}) + "\n" for i in range(4)))
    cfg = rl.RLRunConfig(data=str(data), num_generations=2, per_device_train_batch_size=4, max_steps=2,
                         thinking_budget=4, answer_budget=2, eval_fraction=0.0, eval_every=0, kl_every=0,
                         curriculum=CurriculumConfig(offline_grading=False))
    with pytest.raises(rl.FormatGateError, match=r"SFT.*--allow-low-format"):
        rl.train(cfg, tmp_path / "run", model=model, processor=processor)
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_eval_takes_an_adapter(tiny_path, tmp_path, capsys):
    """``studio eval --adapter``: base + LoRA, scored in the think/answer format."""
    from peft import LoraConfig, get_peft_model

    from studio.cli import main
    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    model, _ = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    peft = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=r".*language_model.*q_proj"))
    peft.save_pretrained(str(tmp_path / "adapter"))
    rc = main(["eval", "--model", str(tiny_path), "--adapter", str(tmp_path / "adapter"),
               "--tasks", str(WORKSHOP / "eval.jsonl"), "--n", "4", "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and f"+ {tmp_path / 'adapter'}" in out and "scoring: thinking" in out
    assert main(["eval", "--model", str(tiny_path), "--adapter", str(tmp_path / "nope"),
                 "--tasks", str(WORKSHOP / "eval.jsonl")]) == 2


def test_a_few_full_sft_steps_teach_the_format(tmp_path):
    """From toy-base (0 % format), 60 steps of the recipe's full fine-tune (at a higher constant
    LR) on a small generated set put the think/answer format on held-out prompts above a floor
    the base cannot reach (measured: 0 → 69 % at step 40 → 94 % at step 60)."""
    from studio.engine.train.metrics import read_metrics
    from studio.engine.train.sft import SFTRunConfig, train

    cfg = SFTRunConfig.from_dict({**_recipe("sft.yaml"),
                                  "data": str(tmp_path / "d" / "sft.jsonl"), "eval_data": str(tmp_path / "d" / "heldout" / "eval.jsonl"),
                                  "tasks": {"kind": "thinking-sft", "scenes": 480, "seed": 5, "eval_n": 24},
                                  "max_steps": 60, "batch_size": 8, "learning_rate": 2e-3,
                                  "lr_scheduler": "constant_with_warmup", "warmup_steps": 5, "skill_eval_steps": 0,
                                  "skill_eval_n": 16, "report_to": ["none"], "save_steps": 1000,
                                  "dataloader_workers": 0})
    out = train(cfg, tmp_path / "run", log_fn=lambda m: None)
    skill = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r.get("kind") == "skill"]
    assert [r["step"] for r in skill] == [0, 60]
    assert skill[0]["skill/format_rate"] == 0.0
    assert skill[-1]["skill/format_rate"] >= 0.5, skill[-1]
    assert out["model"] and (Path(out["model"]) / "model.safetensors").is_file() and out["adapter"] is None
    meta = json.loads((Path(out["model"]) / "studio_model.json").read_text())
    assert meta["stage"] == "thinking" and meta["base"] == "toy-base"
    # the after-training panel's Evaluate: base vs the trained model on the run's held-out prompts
    from studio.engine.train.skill_eval import evaluate_run
    from studio.engine.workshop.evaluate import before_after_table

    before, after = evaluate_run(tmp_path / "run", n=16)
    assert before.model == "toy-base" and before.groups()[-1]["format"] == 0.0
    assert after.groups()[-1]["format"] >= 0.5
    table = before_after_table(before, after)
    assert "| all | all | 16 | 0 → " in table


@pytest.mark.slow
def test_sft_recipe_end_to_end_meets_its_thresholds(tmp_path):
    """The SFT recipe as a user runs it: format >= 95 % and accuracy >= 80 % on its 480 held-out
    prompts (measured 100 % / 84 % in 10 min 32 s)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "studio", "sft", "--config", str(WORKSHOP / "sft.yaml"),
                        "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = list(tmp_path.iterdir())
    from studio.engine.workshop.evaluate import evaluate

    rep = evaluate(str(run / "model"), _recipe("sft.yaml")["eval_data"], n=None)
    overall = rep.groups()[-1]
    assert overall["n"] == 480 and overall["format"] >= 0.95 and overall["accuracy"] >= 0.80, rep.table()


@pytest.mark.slow
def test_rl_recipe_end_to_end_settles_the_box_order(tmp_path):
    """The RL recipe as a user runs it, from toy-thinking: held-out accuracy on boxes of named
    objects (grounding level 1) up by ≥ 15 points (issue 25; measured +51 in two runs), and not
    by a position prior — scored per answer cell on 960 fresh held-out prompts (seed 7001, ~60
    per cell): no cell down by more than 5 points (measured worst −1.9) and no cell predicted
    more than 5 points above its share of the prompts; the four v1 families not down by more
    than 3 (README, *RL recipe*)."""
    import subprocess
    import sys

    from studio.config import ModelSpec
    from studio.engine.infer.models import load
    from studio.engine.workshop import task_files
    from studio.engine.workshop.evaluate import evaluate

    r = subprocess.run([sys.executable, "-m", "studio", "rl", "--config", str(WORKSHOP / "rl.yaml"),
                        "--runs-dir", str(tmp_path / "runs")], cwd=REPO, capture_output=True, text=True,
                       timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = list((tmp_path / "runs").iterdir())
    task_files.write_dataset(tmp_path / "all", 12, 0, eval_n=480)  # the v1 families' held-out set
    task_files.write_dataset(tmp_path / "cells", 1, 11, ["grounding"], [1], eval_n=960, eval_seed=7001)
    scores = {}
    for name, adapter in (("before", None), ("after", str(run / "adapter"))):
        loaded = load(ModelSpec(name_or_path="toy-thinking", adapter=adapter, device="cpu"))
        boxes = evaluate(name, WORKSHOP / "rl-boxes" / "eval.jsonl", n=None, mode="thinking", loaded=loaded)
        every = evaluate(name, tmp_path / "all" / "eval.jsonl", n=None, mode="thinking", loaded=loaded)
        cells = evaluate(name, tmp_path / "cells" / "eval.jsonl", n=None, mode="thinking", loaded=loaded)
        fam: dict[str, list] = {}
        for res in every.results:
            fam.setdefault(res.family, []).append(res.correct)
        scores[name] = (boxes.groups()[-1], {a["answer"]: a for a in cells.by_answer()},
                        {f: sum(v) / len(v) for f, v in fam.items()})
    (b_box, b_cells, b_fam), (a_box, a_cells, a_fam) = scores["before"], scores["after"]
    assert a_box["n"] == 480 and a_box["format"] >= 0.95
    assert a_box["accuracy"] >= b_box["accuracy"] + 0.15, (b_box, a_box)
    n_cells = sum(c["n"] for c in a_cells.values())
    assert all(a_cells[c]["predicted"] <= a_cells[c]["n"] / n_cells + 0.05 for c in a_cells), a_cells
    assert all(a_cells[c]["accuracy"] >= b_cells[c]["accuracy"] - 0.05 for c in b_cells if b_cells[c]["n"] >= 20), \
        (b_cells, a_cells)
    assert all(a_fam[f] >= b_fam[f] - 0.03 for f in b_fam), (b_fam, a_fam)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [m["step"] for m in metrics if "eval/accuracy" in m]
    assert evals[0] == 0 and evals[-1] == 50  # the dashboard's held-out curve ends at the last step


@pytest.mark.parametrize("kind", ["sft", "rl"])
def test_the_tab_starts_the_workshop_recipe_with_one_click(kind, tiny_path, tmp_path, monkeypatch):
    """The recipe button makes a new run folder holding the recipe's config and starts
    ``studio <kind> --config <run>/config.yaml`` (the child is recorded, not run)."""
    import gradio as gr
    from gradio_client import Client

    from studio.config import ModelSpec
    from studio.engine.train.jobs import JobManager
    from studio.ui.context import AppContext
    from studio.ui.tabs import rl as rl_tab
    from studio.ui.tabs import sft as sft_tab

    started = []
    monkeypatch.setattr(JobManager, "start", lambda self, k, run, **kw: started.append((k, Path(run))))
    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=tmp_path / "runs")
    with gr.Blocks() as demo:
        (sft_tab if kind == "sft" else rl_tab).build(ctx)
    demo.queue()
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        client.predict(api_name=f"/{kind}_start_recipe")
        client.predict(api_name=f"/{kind}_start_recipe")
    finally:
        demo.close()
    runs = sorted(p for p in ctx.runs_dir.iterdir() if p.is_dir())
    assert [k for k, _ in started] == [kind, kind] and [r for _, r in started] == runs and len(runs) == 2
    text = (runs[0] / "config.yaml").read_text()
    if kind == "sft":
        assert "finetuning: full" in text and "name_or_path: toy-base" in text
    else:
        assert "name_or_path: toy-thinking" in text and "mode: rlcs" in text


def test_eval_by_answer_shows_a_gain_that_comes_from_the_answer_prior():
    """`studio eval --by-answer`: a model that answers '1' to everything scores its share of
    1s — the table shows answer 1 predicted 100 % while its share is 60 %."""
    from studio.engine.workshop.evaluate import Report, Result

    def res(answer: str, pred: str) -> Result:
        return Result("i", "shapes", 2, answer, "", pred, True, answer == pred, 0.2)

    rep = Report("m", "thinking", [res("1", "1")] * 3 + [res("2", "1"), res("3", "1")])
    rows = {r["answer"]: r for r in rep.by_answer()}
    assert [r["answer"] for r in rep.by_answer()] == ["1", "2", "3"]
    assert rows["1"]["accuracy"] == 1.0 and rows["1"]["predicted"] == 1.0
    assert rows["2"]["accuracy"] == 0.0 and rows["2"]["predicted"] == 0.0
    assert "| 1 | 3 | 60 | 100 | 100 |" in rep.answer_table()
    assert rep.to_json()["by_answer"] == rep.by_answer()


class _StopAfter:
    """A stop flag that reads as set from its ``n``-th check on (counts the checks)."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def test_stop_ends_the_recipe_data_generation_within_a_scene_and_keeps_nothing(tmp_path):
    from studio.engine.workshop.workshop_data import write_thinking_sft
    from studio.errors import StoppedError

    stop = _StopAfter(4)
    out = tmp_path / "generated" / "thinking-sft-500"
    with pytest.raises(StoppedError, match=r"3 of 500 scenes"):
        write_thinking_sft(out, scenes=500, eval_n=0, stop=stop)
    assert stop.calls == 4  # checked before every scene, not after the whole file
    assert list(tmp_path.iterdir()) == []  # the JSONL, the 3 images and the folders it made: all gone
    # a folder that was there keeps what it held; only this call's images go
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(StoppedError):
        write_thinking_sft(out, scenes=500, eval_n=0, stop=_StopAfter(3))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_stopped_recipe_start_makes_no_run_folder_and_the_next_start_generates_again(tmp_path):
    """The SFT tab's recipe button path (recipe_run with check_data) and `studio sft`."""
    import threading

    from studio.engine.train.runs import recipe_run
    from studio.engine.train.sft import SFTRunConfig, check_data
    from studio.errors import StoppedError

    recipe = tmp_path / "r" / "sft.yaml"
    recipe.parent.mkdir()
    recipe.write_text("name: r\nmodel: {name_or_path: embedded}\ndata: gen/sft.jsonl\n"
                      "tasks: {scenes: 3, eval_n: 0}\nmax_steps: 1\n")
    runs = tmp_path / "runs"
    stop = threading.Event()
    stop.set()
    with pytest.raises(StoppedError, match="Start again"):
        recipe_run(SFTRunConfig, recipe, runs, "sft", check=lambda cfg: check_data(cfg, stop=stop))
    assert not runs.exists() or list(runs.iterdir()) == []
    assert not (recipe.parent / "gen" / "sft.jsonl").exists()
    run, _ = recipe_run(SFTRunConfig, recipe, runs, "sft", check=lambda cfg: check_data(cfg, stop=threading.Event()))
    assert run.parent == runs and len((recipe.parent / "gen" / "sft.jsonl").read_text().splitlines()) == 3


def test_a_relative_data_path_is_kept_absolute_in_the_run_config(tmp_path, monkeypatch):
    """``studio sft/rl --data rel.jsonl`` from one folder writes an absolute data path into the
    run's config.yaml, so ``launch.sh`` and the printed "repeat with" command work from any
    folder; a hub-style id that is no local path stays as written."""
    from studio.cli import main
    from studio.engine.train.data.sources import local_or_as_given
    from studio.engine.train.sft import SFTRunConfig

    here = tmp_path / "mydata"
    here.mkdir()
    (here / "d.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>a</think><answer>b</answer>"}]}) + "\n")
    monkeypatch.chdir(here)
    runs = tmp_path / "runs"
    assert main(["sft", "--data", "d.jsonl", "--model", "embedded", "--runs-dir", str(runs), "--dry-run"]) == 0
    (made,) = runs.iterdir()
    assert SFTRunConfig.from_yaml(made / "config.yaml").data == str(here / "d.jsonl")
    assert local_or_as_given("someone/some-dataset") == "someone/some-dataset"


def _sft_recipe_panel(tmp_path, scenes: int):
    """A first-use SFT recipe of ``scenes`` generated scenes (embedded model, 1 step), its runs
    folder and the SFT job panel's handlers over it (no UI, no command run)."""
    from studio.engine.train.jobs import JobManager
    from studio.ui.jobpanel import _PanelHandlers

    recipe = tmp_path / "r" / "sft.yaml"
    recipe.parent.mkdir()
    recipe.write_text("name: r\nmodel: {name_or_path: embedded}\ndata: gen/sft.jsonl\n"
                      f"tasks: {{scenes: {scenes}, eval_n: 0}}\nmax_steps: 1\n")
    runs = tmp_path / "runs"
    return recipe, runs, _PanelHandlers(None, "sft", None, JobManager(runs), resume_args=(), graceful_timeout=1,
                                        log_lines=5, command=None)


def test_the_sft_tabs_stop_ends_the_recipes_data_generation(tmp_path):
    """Issue 28.16: Stop during the SFT recipe's first-use data generation was honoured only
    after it (the tab's job panel gave the generation no stop event, and no job existed to
    stop). Now Stop is live while a Start is prepared, ends the generation within a scene,
    deletes the partial data, makes no run folder, and the status line says so."""
    import threading

    from studio.engine.train.runs import recipe_run
    from studio.engine.train.sft import SFTRunConfig, check_data
    from studio.ui.i18n import tr

    recipe, runs, h = _sft_recipe_panel(tmp_path, scenes=100000)

    def recipe_fn(stop=None):  # what the SFT tab's recipe button hands the panel
        return recipe_run(SFTRunConfig, recipe, runs, "sft", check=lambda cfg: check_data(cfg, stop=stop))

    got = {}
    worker = threading.Thread(target=lambda: got.setdefault("run", h.prepare(recipe_fn)))
    worker.start()
    images = recipe.parent / "gen" / "images"
    deadline = time.monotonic() + 60
    while not (images.is_dir() and any(images.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert images.is_dir() and any(images.iterdir()), "the generation did not start"
    status, _, start_btn, stop_btn, _ = h.poll("")
    assert status == tr("job.preparing", "en") and stop_btn["interactive"] and not start_btn["interactive"]
    with pytest.raises(Exception, match="being prepared"):  # one preparation at a time
        h.prepare(recipe_fn)
    said = h.stop("")  # waits ≤ 10 s for the preparation to end (a loaded machine may take longer)
    assert said in (tr("job.prep_stopped_data", "en"), tr("job.prep_stopping", "en"))
    worker.join(60)
    assert not worker.is_alive() and got["run"] == ""
    assert not (recipe.parent / "gen").exists()  # the partial data: deleted
    assert not runs.exists() or [p for p in runs.iterdir() if not p.name.startswith('.')] == []  # no run folder
    assert h.start_prepared("")[:2] == ("", tr("job.prep_stopped_data", "en"))  # the status line says so
    assert not h.preparing() and h.poll("")[2]["interactive"]  # Start is live again



def test_the_sft_tabs_preparation_says_how_far_it_is_and_stop_ends_the_data_check(tmp_path):
    """Issue 28 items 3/16: "preparing: checking the data…" said nothing for half a minute on
    the 16,800-row recipe, and Stop during that check waited for its end. The status now names
    the phase with count / total and the time left, and Stop ends the check at the next row."""
    import threading

    from studio.engine.train.runs import recipe_run
    from studio.engine.train.sft import SFTRunConfig, check_data
    from studio.ui.i18n import tr

    recipe, runs, h = _sft_recipe_panel(tmp_path, scenes=200)
    seen: list[tuple[str, int, int]] = []
    at_row_100 = threading.Event()

    def recipe_fn(stop=None, progress=None):  # the tab's recipe button, with a hold at row 100 of the check
        def spy(phase, done, total):
            seen.append((phase, done, total))
            progress(phase, done, total)
            if phase == "checking" and done == 100:
                at_row_100.set()
                stop.wait(30)  # the user reads the status and presses Stop

        return recipe_run(SFTRunConfig, recipe, runs, "sft", check=lambda cfg: check_data(cfg, stop=stop, progress=spy))

    got = {}
    worker = threading.Thread(target=lambda: got.setdefault("run", h.prepare(recipe_fn)))
    worker.start()
    assert at_row_100.wait(120), "the data check did not start"
    assert ("generating", 200, 200) in seen  # the first-use generation reported its scenes
    status = h.poll("")[0]
    assert status.startswith("preparing: checking the data: 100/200 rows (50%) · elapsed "), status
    assert status.endswith(" left · Stop cancels"), status
    assert h.stop("") == tr("job.prep_stopped", "en")  # ended at the next row, not after the check
    worker.join(30)
    assert got["run"] == "" and max(d for p, d, _ in seen if p == "checking") == 100
    assert not runs.exists() or [p for p in runs.iterdir() if not p.name.startswith('.')] == []  # no run folder
    h.prep_progress("generating", 1200, 16800)
    assert h.preparing_text().startswith("preparing: generating the recipe's data: 1,200/16,800 scenes (7%)")
