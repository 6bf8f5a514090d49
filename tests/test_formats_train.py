"""Every data format trains one step as it is: SFT formats through the SFT trainer, RL formats
(EasyR1, verl, ms-swift GRPO, R1-V; Parquet with embedded images included) through GRPO, on the
tiny model. The same engine calls ``studio sft`` / ``studio rl`` make; the whole-CLI runs are
the slow tests at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import ModelSpec
from tests import ecosystem_data as E


def parity_reward(completions, **kw):
    """A reward with variance on a random model (the mechanics, not the meaning, are under test)."""
    return [float(len(c) % 2) for c in completions]


def _sft_cfg(tiny_path, data, **kw):
    from studio.engine.train.sft import LoraSpec, SFTRunConfig

    base = dict(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), data=str(data),
                lora=LoraSpec(rank=4, alpha=8, dropout=0.0), learning_rate=1e-3, max_steps=1, batch_size=1,
                grad_accum=1, max_length=512, eval_split=0.0, save_steps=100, report_to=["none"])
    base.update(kw)
    return SFTRunConfig(**base)


def _cases(names, default):
    """Every format; only ``default`` (the Parquet files with embedded images) in the default
    suite, the rest ``slow`` (each is a model load and a training step)."""
    return [pytest.param(n, marks=() if n == default else pytest.mark.slow) for n in names]


SFT_CASES = _cases(sorted(E.SFT_BUILDERS) + ["llamafactory_entry"], "trl_parquet")
RL_CASES = _cases(sorted(E.RL_BUILDERS), "easyr1_parquet")


@pytest.mark.parametrize("name", SFT_CASES)
def test_sft_format_trains_one_step(tiny_path, tmp_path, name):
    from studio.engine.train.sft import train

    if name == "llamafactory_entry":
        cfg = _sft_cfg(tiny_path, E.llamafactory_folder(tmp_path / "data"), dataset="custom_chat")
    else:
        cfg = _sft_cfg(tiny_path, E.SFT_BUILDERS[name](tmp_path / "data"))
    logs: list[str] = []
    out = train(cfg, tmp_path / "run", log_fn=logs.append)
    assert out["status"] == "finished" and out["global_step"] == 1
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    doctor = json.loads((tmp_path / "run" / "doctor.json").read_text())
    assert doctor["summary"]["errors"] == 0
    assert any(line.startswith("data: Read as ") for line in logs)  # the run log names the format read
    assert any(line.startswith("data: Loss (last_thinking): ") for line in logs)


def _rl_cfg(data, **kw):
    from studio.engine.train.curriculum import CurriculumConfig
    from studio.engine.train.rl import RLRunConfig

    base = dict(data=str(data), num_generations=2, per_device_train_batch_size=4, max_steps=1,
                thinking_budget=6, answer_budget=3, eval_fraction=0.0, eval_every=0, kl_every=0, save_every=100,
                lora_rank=4, lora_alpha=8, learning_rate=5e-3, format_gate="warn",
                curriculum=CurriculumConfig(offline_grading=False))
    base.update(kw)
    return RLRunConfig(**base)


@pytest.mark.parametrize("name", RL_CASES)
def test_rl_format_trains_one_step(tiny_path, tmp_path, name):
    import torch

    from studio.engine.infer.models import load
    from studio.engine.train import rl

    torch.manual_seed(0)
    model, processor = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    data = E.RL_BUILDERS[name](tmp_path / "data")
    out = rl.train(_rl_cfg(data), tmp_path / "run", model=model, processor=processor, reward_fn=parity_reward)
    assert out["steps"] == 1 and out["rollouts"] >= 4
    rollouts = [json.loads(x) for x in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert rollouts and all(Path(r["image"]).is_file() for r in rollouts)  # each prompt kept its image


# ----------------------------------------------------------------------------- the whole CLI
@pytest.mark.slow
def test_cli_sft_on_a_llamafactory_folder_and_rl_on_verl_parquet(tiny_path, tmp_path, capsys):
    from studio.cli import main

    folder = E.llamafactory_folder(tmp_path / "data")
    runs = tmp_path / "runs"
    assert main(["sft", "--data", str(folder), "--dataset", "mllm_demo", "--model", str(tiny_path),
                 "--max-steps", "1", "--runs-dir", str(runs), "--set", "report_to=none"]) == 0
    out = capsys.readouterr().out
    assert "data: Read as ShareGPT" in out and "finished at step 1" in out
    assert "data: Loss (last_thinking): 3 of 6 assistant answers trained" in out
    verl = E.verl_parquet(tmp_path / "verl")
    assert main(["rl", "--data", str(verl), "--model", str(tiny_path), "--max-steps", "1", "--runs-dir", str(runs),
                 "--allow-low-format", "--cold-start", "--num-generations", "2", "--batch-size", "4",
                 "--thinking-budget", "6", "--answer-budget", "3", "--set", "eval_fraction=0"]) == 0
    assert "adapter:" in capsys.readouterr().out
