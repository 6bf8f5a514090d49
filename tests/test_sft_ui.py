"""SFT tab built alone and driven through gradio_client: doctor, preview, config, and a
child-process run end to end (slow)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "sft" / "train.jsonl"


@pytest.fixture
def app(tiny_path, tmp_path):
    import gradio as gr

    from studio.config import ModelSpec
    from studio.ui.context import AppContext
    from studio.ui.tabs import sft

    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=tmp_path / "runs")
    with gr.Blocks() as demo:
        sft.build(ctx)
    demo.queue()
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    from gradio_client import Client

    client = Client(demo.local_url, verbose=False)
    yield ctx, client
    demo.close()


def form(tiny_path, **kw):
    v = dict(model=str(tiny_path), name="ui", rank=4, alpha=8, dropout=0.0,
             targets=["q_proj", "v_proj"], train_merger=False, qlora=False, lr=0.01, epochs=1, max_steps=3,
             batch_size=2, grad_accum=1, max_length=256, image_max_pixels=0, seed=0, eval_split=0.0,
             save_steps=2, policy="last_thinking", oversize="resize", finetuning="lora", eval_data="")
    v.update(kw)
    return list(v.values())


def test_doctor_preview_and_config(app, tiny_path, tmp_path):
    ctx, client = app
    md, table = client.predict(None, str(SAMPLE), str(tiny_path), 512, "last_thinking", "resize", api_name="/sft_doctor")
    assert "**24 rows** · 0 errors" in md
    spans = client.predict(None, str(SAMPLE), str(tiny_path), 1, "last_thinking", 512, api_name="/sft_preview")
    trained = "".join(s["token"] for s in spans if s["class_or_confidence"] == "trained")
    assert trained.startswith("<think>") and trained.endswith("</answer>")
    yaml_text = client.predict(None, str(SAMPLE), *form(tiny_path), api_name="/sft_config")
    assert "rank: 4" in yaml_text and "max_steps: 3" in yaml_text
    with pytest.raises(Exception, match="lora.rank"):
        client.predict(None, str(SAMPLE), *form(tiny_path, rank=0), api_name="/sft_config")
    md, table = client.predict(None, "/nope.jsonl", str(tiny_path), 512, "last_thinking", "resize",
                               api_name="/sft_doctor")
    assert "does not exist" in table["data"][0][4] and table["data"][0][2] == "error"
    # issue 28.1: the problems are listed once, in the grid, where tags read as written; the
    # Markdown above (which swallows <answer> as an HTML tag) carries only the counts
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "Q?"}, '
                   '{"role": "assistant", "content": "<think>t</think><answer>4"}]}\n', encoding="utf-8")
    md, table = client.predict(None, str(bad), str(tiny_path), 512, "last_thinking", "resize", api_name="/sft_doctor")
    assert "1 error" in md and "| row |" not in md and "missing" not in md
    cells = [r[4] + " " + r[5] for r in table["data"]]
    assert any("</answer>" in c for c in cells), cells
    # issue 28.4: "Load the workshop recipe" shows in the form and config.yaml what the recipe
    # button runs (a full fine-tune of toy-base), not the form's own defaults
    out = client.predict(api_name="/sft_load_recipe")
    upload, path, model, name, rank, *rest = out
    values = dict(zip(["alpha", "dropout", "targets", "train_merger", "qlora", "lr", "epochs", "max_steps",
                       "batch_size", "grad_accum", "max_length", "image_max_pixels", "seed", "eval_split",
                       "save_steps", "policy", "oversize", "finetuning", "eval_data", "yaml"], rest))
    assert model == "toy-base" and name == "workshop-sft" and path.endswith("thinking-sft-15600/sft.jsonl")
    assert values["finetuning"] == "full" and values["policy"] == "all_turns" and values["max_steps"] == 1300
    assert values["batch_size"] == 12 and values["lr"] == 5.0e-4 and values["eval_data"].endswith("eval.jsonl")
    assert "tasks: {kind: thinking-sft" in values["yaml"] and "finetuning: full" in values["yaml"]
    # issue 28.10: Evaluate with no run picked says so in the panel
    msg, answers = client.predict(api_name="/sft_evaluate")
    assert "Pick a run first" in msg and answers == ""


@pytest.mark.slow
def test_child_process_run_end_to_end(app, tiny_path):
    from studio.engine.train.runs import find_adapter, read_status

    ctx, client = app
    out = client.predict(None, str(SAMPLE), *form(tiny_path), api_name="/sft_start")
    [run_dir] = [p for p in ctx.runs_dir.iterdir() if p.is_dir()]
    assert out[0].startswith("running") and "studio sft --config" in out[2] and run_dir.name in out[2]
    t0 = time.time()
    while time.time() - t0 < 300:
        st = read_status(run_dir).get("status")
        if st in ("finished", "failed", "stopped") and not (ctx.runs_dir / ".job.lock").exists():
            break
        time.sleep(1)
    assert read_status(run_dir)["status"] == "finished", (run_dir / "train.log").read_text()[-2000:]
    assert find_adapter(run_dir) is not None
    assert (run_dir / "doctor.md").is_file() and (run_dir / "metrics.jsonl").is_file()
    msg = client.predict(api_name="/sft_try")  # the run folder is this session's gr.State
    assert "Chat" in msg and ctx.extra["chat_adapter"] == str(run_dir / "adapter")
    # issue 28.10: Export says what was verified (the merged model's reply equals base + adapter's)
    msg = client.predict(str(run_dir / "merged"), api_name="/sft_export")
    assert "Verified: the merged model's greedy reply" in msg and " tokens." in msg, msg


def test_bad_data_is_refused_before_a_run_starts(app, tiny_path, tmp_path):
    ctx, client = app
    bad = tmp_path / "bad.jsonl"
    good = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<answer>x</answer>"}]}'
    bad.write_text("\n".join([good] * 6 + ["{not json"]) + "\n")
    def runs():
        return {p for p in ctx.runs_dir.iterdir() if p.is_dir()} if ctx.runs_dir.exists() else set()

    before = runs()
    with pytest.raises(Exception, match="line 7"):
        client.predict(None, str(bad), *form(tiny_path), api_name="/sft_start")
    assert runs() == before  # no run folder, no child process


def test_fix_never_overwrites_an_existing_file(app, tmp_path):
    """Issue 23, defect 11: *fix* silently replaced an existing ``*.fixed.jsonl`` (a user's
    edited file was lost). Now it writes beside it under a free name."""
    import json

    _, client = app
    data = tmp_path / "data.jsonl"
    row = {"messages": [{"role": "user", "content": "2+2?"},
                        {"role": "assistant", "content": "<think>add</think><answer>4"}]}
    data.write_text(json.dumps(row) + "\n")
    mine = tmp_path / "data.fixed.jsonl"
    mine.write_text("my own edits\n")
    _, out = client.predict(None, str(data), ["close_answer"], api_name="/sft_fix")
    assert Path(out) == tmp_path / "data.fixed-2.jsonl"
    assert mine.read_text() == "my own edits\n"
    assert "<answer>4</answer>" in Path(out).read_text()
    _, again = client.predict(None, str(data), ["close_answer"], api_name="/sft_fix")
    assert Path(again) == tmp_path / "data.fixed-3.jsonl" and Path(out).is_file()


def test_workshop_form_starts_as_the_recipe_and_runs_it():
    """Issue 28.4: with the workshop model loaded, the form's starting values are the
    workshop recipe's (model toy-base, a full fine-tune, 1,300 steps …) and config.yaml
    shows it; Start with the untouched form makes the same config as the recipe button
    (its data generation, scheduler and the rest included). A changed data path drops the
    recipe's data generation; the recipe card says what runs."""
    import gradio as gr
    import yaml

    from studio.config import ModelSpec
    from studio.engine.train.runs import load_recipe
    from studio.engine.train.sft import SFTRunConfig
    from studio.ui.context import AppContext
    from studio.ui.tabs import sft

    with gr.Blocks() as demo:
        sft.build(AppContext(model=ModelSpec(name_or_path="toy-thinking")))
    fns = {f.api_name: f for f in demo.fns.values() if f.api_name}
    show = fns["sft_config"]
    values = [c.value for c in show.inputs]  # what the page starts with (upload, path, form…, recipe extras)
    recipe = load_recipe(SFTRunConfig, sft.RECIPE).to_dict()
    from_form = yaml.safe_load(show.fn(*values))
    from_form.pop("output_dir", None), recipe.pop("output_dir", None)
    assert from_form == recipe
    assert recipe["model"]["name_or_path"] == "toy-base" and recipe["finetuning"] == "full"
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"]}
    summary = props["sft-recipe-summary"]["value"]
    assert all(s in summary for s in ("full fine-tune", "toy-base", "1,300 steps", "batch 12"))
    # another data path: the recipe's data generation is not carried over to it
    values[1] = str(SAMPLE)
    assert yaml.safe_load(show.fn(*values)).get("tasks") is None
    # another model (a real GLM-4.1V): the form keeps its plain defaults, the card is still there
    with gr.Blocks() as demo2:
        sft.build(AppContext(model=ModelSpec(name_or_path="zai-org/GLM-4.1V-9B-Thinking", device="cpu")))
    show2 = next(f for f in demo2.fns.values() if f.api_name == "sft_config")
    plain = yaml.safe_load(show2.fn(*[c.value for c in show2.inputs]))
    assert plain["model"]["name_or_path"] == "zai-org/GLM-4.1V-9B-Thinking" and plain["finetuning"] == "lora"
    assert plain.get("tasks") is None
