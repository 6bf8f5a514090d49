"""Merge a LoRA adapter into the tiny GLM-4.1V and verify the round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.engine.train import export as E
from studio.errors import InputError

#: LoRA on the language model only (the vision tower has gate/up/down_proj too; FACTS.md).
TARGET = r".*language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_up_proj|down_proj))"


@pytest.fixture(scope="module")
def adapter(tiny_path, tmp_path_factory) -> Path:
    """A LoRA adapter whose lora_B weights are random (non-zero), so it changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    torch.manual_seed(0)
    model, _ = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=TARGET))
    names = [n for n, _ in peft_model.named_parameters() if "lora_B" in n]
    assert names and all(".language_model." in n for n in names)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.5)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    peft_model.save_pretrained(out)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_path)
    return out


def test_merge_round_trip(tiny_path, adapter, tmp_path):
    import torch

    torch.set_num_threads(1)
    out = tmp_path / "merged"
    report = E.merge_adapter(None, adapter, out, n_tokens=12, device="cpu")
    assert report["verified"] and report["match"] and report["first_difference"] is None
    assert report["tokens_compared"] == 12 and report["with_image"] and report["dtype"] == "float32"
    assert report["merged_ids"] == report["reference_ids"] and len(report["merged_ids"]) == 12
    # The adapter really changes the model, so the match is not trivial.
    assert report["adapter_changes_output"] and report["base_ids"] != report["merged_ids"]
    # A plain model folder: safetensors, processor, no adapter files; no temp folder left behind.
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "adapter_config.json" not in names
    assert any(n.startswith(("processor_config", "preprocessor_config")) for n in names)
    assert "tokenizer.json" in names and ({"chat_template.jinja", "chat_template.json"} & names)
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]
    saved = json.loads((out / "studio_export.json").read_text())
    assert saved["match"] is True and saved["base"] == str(tiny_path)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not any("lora" in k for k in f.keys())

    # Refuses to overwrite without being asked.
    with pytest.raises(InputError, match="already exists"):
        E.merge_adapter(str(tiny_path), adapter, out, n_tokens=2, device="cpu")


def test_mismatch_raises_and_leaves_nothing(tiny_path, adapter, tmp_path, monkeypatch):
    """A merged model that generates differently is never kept at out_dir."""
    real = E.greedy_ids
    calls = {"n": 0}

    def fake(model, processor, prompt, image, n):
        ids, scores = real(model, processor, prompt, image, n)
        calls["n"] += 1
        if calls["n"] == 3:  # reference, adapter-disabled, then the reloaded merged model
            ids = ids[:4] + [(ids[4] + 1) % 100] + ids[5:]
        return ids, scores

    monkeypatch.setattr(E, "greedy_ids", fake)
    out = tmp_path / "merged"
    with pytest.raises(E.ExportError, match=r"differs from base\+adapter at token 4 of 6") as ei:
        E.merge_adapter(str(tiny_path), adapter, out, n_tokens=6, device="cpu")
    assert ei.value.report["first_difference"] == 4 and ei.value.report["match"] is False
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_compare_ids_near_tie():
    import torch

    ref_s = [torch.tensor([0.0, 5.0, 4.9])]
    got_s = [torch.tensor([0.0, 4.95, 5.0])]
    tie = E.compare_ids([1], [2], ref_s, got_s, tie_tolerance=0.2)
    assert tie["near_tie"] and not tie["match"] and tie["first_difference"] == 0
    assert not E.compare_ids([1], [2], ref_s, got_s, tie_tolerance=0.0)["near_tie"]
    assert not E.compare_ids([1], [0], ref_s, got_s, tie_tolerance=0.2)["near_tie"]
    assert E.compare_ids([1, 2], [1])["first_difference"] == 1


def test_bad_inputs_and_push_messages(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="not an adapter folder"):
        E.merge_adapter("embedded", tmp_path, tmp_path / "out")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(E.ExportError, match="offline mode"):
        E.push_to_hub(tmp_path / "model", "me/glm4v-ft", token="x")
    with pytest.raises(InputError, match="repo id like"):
        E.push_to_hub(tmp_path / "model", "no-slash")


def test_export_cli(tiny_path, adapter, tmp_path, capsys):
    from studio.cli import main

    out = tmp_path / "m"
    assert main(["export", "--adapter", str(adapter), "--out", str(out), "--device", "cpu",
                 "--tokens", "4", "--text-only", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["match"] is True and rep["tokens_compared"] == 4 and rep["with_image"] is False
    assert (out / "model.safetensors").is_file()
    assert main(["export", "--adapter", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not an adapter folder" in capsys.readouterr().err


def test_runs_tab_exports_a_stopped_run_from_its_last_checkpoint(adapter, tmp_path):
    """A stopped run has checkpoint-N but no adapter/: the Runs tab merges the checkpoint,
    as `studio export --adapter <run>/checkpoint-N` does, and says so."""
    import shutil

    from studio.engine.train.runs import write_status
    from studio.errors import StudioError
    from studio.ui.context import AppContext
    from studio.ui.tabs import runs as runs_tab

    run = tmp_path / "runs" / "20260101-000000-sft-stopped"
    for n in (2, 4):
        ck = run / f"checkpoint-{n}"
        shutil.copytree(adapter, ck)
        (ck / "trainer_state.json").write_text(json.dumps({"global_step": n}))
    (run / "checkpoint-6").mkdir()  # an interrupted save: no trainer_state.json, not used
    shutil.copy(adapter / "adapter_config.json", run / "checkpoint-6")
    write_status(run, "stopped", kind="sft")
    ctx = AppContext(runs_dir=tmp_path / "runs")
    report = runs_tab.export_run(ctx, run.name, str(tmp_path / "merged"))
    assert report["adapter"] == str(run / "checkpoint-4") and report["verified"] and report["match"]
    assert (tmp_path / "merged" / "config.json").is_file()
    empty = tmp_path / "runs" / "20260101-000001-sft-empty"
    empty.mkdir()
    write_status(empty, "stopped", kind="sft")
    with pytest.raises(StudioError, match="has no adapter or checkpoint yet"):
        runs_tab.export_run(ctx, empty.name, str(tmp_path / "m2"))
