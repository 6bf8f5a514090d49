"""RL engine tests: lazy curriculum sampler, GRPO steps with images and video, resume, bad input.

A random tiny model never produces the think/answer format, so the training tests use a
reward with variance (parity of the completion's length) — the mechanics under test
(sampler, expansion, forced answering, video in the loss forward, checkpoints) do not
depend on what the reward means.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA

PHOTO = SAMPLE_DATA / "photos" / "coffee.jpg"
VIDEO = SAMPLE_DATA / "video" / "clip.mp4"


def parity_reward(completions, **kw):
    """Reward with variance on a random model: 1 for an odd number of characters."""
    return [float(len(c) % 2) for c in completions]


def _write(path: Path, rows: list[dict]) -> Path:
    """Write RL rows as JSONL (media paths as given: absolute ones are read where they are)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _image_rows(n: int) -> list[dict]:
    return [{"prompt": f"<image>How many cups are there? ({i})", "images": [str(PHOTO)], "answer": "1",
             "task_type": "counting", "difficulty": 1 + i % 3} for i in range(n)]


def _video_rows(n: int) -> list[dict]:
    return [{"prompt": f"<video>Which animal appears? ({i})", "videos": [str(VIDEO)], "answer": "cat",
             "task_type": "exact"} for i in range(n)]


def _cfg(data: Path, **kw):
    from studio.engine.train.curriculum import CurriculumConfig
    from studio.engine.train.rl import RLRunConfig

    cur = kw.pop("curriculum", {})
    base = dict(data=str(data), num_generations=2, per_device_train_batch_size=4, max_steps=3,
                thinking_budget=6, answer_budget=3, eval_fraction=0.0, eval_every=0, kl_every=0, save_every=100,
                lora_rank=4, lora_alpha=8, learning_rate=5e-3, format_gate="warn",  # random model: 0 % format
                curriculum=CurriculumConfig(**{"offline_grading": False, **cur}))
    base.update(kw)
    return RLRunConfig(**base)


@pytest.fixture()
def fresh_tiny(tiny_path):
    """A freshly loaded tiny model per test (training mutates it)."""
    import torch

    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    torch.manual_seed(0)
    return load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))


def _record_loss_forwards(model):
    """Record the kwargs of every forward that computes a loss with gradients."""
    import torch

    calls: list[dict] = []

    def hook(module, args, kwargs):
        if torch.is_grad_enabled() and "labels" in kwargs:
            calls.append({k: (tuple(v.shape) if hasattr(v, "shape") else v) for k, v in kwargs.items()})

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


# --------------------------------------------------------------------------- sampler


class _CountingState:
    """Wraps a CurriculumState and counts draws (to prove they are lazy)."""

    def __init__(self, state):
        self.state, self.draws = state, 0

    def draw(self, *a, **kw):
        self.draws += 1
        return self.state.draw(*a, **kw)


@pytest.mark.parametrize("mode", ["rlcs", "uniform"])
def test_sampler_keeps_repeat_structure_and_is_lazy_under_prefetch(mode):
    from torch.utils.data import DataLoader

    from studio.engine.train.curriculum import CurriculumConfig, CurriculumState
    from studio.engine.train.rl import CurriculumSampler, PromptDrawer

    B, G, repeat, blocks = 3, 2, 2, 4
    state = CurriculumState(12, CurriculumConfig(mode=mode, seed=1))
    state.expansion_ema = 1.6  # rlcs: a pool of ceil(3·1.6) = 5 prompts per draw
    counting = _CountingState(state)
    drawer = PromptDrawer(counting, 12)
    sampler = CurriculumSampler(drawer.draw, B, G, repeat, blocks)
    assert len(sampler) == blocks * B * G * repeat

    # Dataloader batch = one generation batch (B·G rows), like GRPOTrainer's.
    it = iter(DataLoader(list(range(12)), batch_size=B * G, sampler=sampler))
    batches = []
    current = next(it)
    prefetched = next(it)  # accelerate's loader keeps one batch ahead
    assert counting.draws == 1, "the second batch repeats the first block: no new draw yet"
    for k in range(blocks * repeat):
        rows = current.tolist()
        batches.append(rows)
        if k % repeat == 0:  # the trainer generates + scores the first batch of each block
            pool = rows[::G] + drawer.extras_for(rows[::G])
            others = [i for i in drawer.pending if i not in pool]
            assert not set(pool) & set(others), "a pending (prefetched) prompt was drawn twice"
            drawer.settle(pool)
        current, prefetched = prefetched, next(it, None)

    for b in range(blocks):
        block = batches[b * repeat:(b + 1) * repeat]
        assert all(x == block[0] for x in block), "each generation batch repeats steps_per_generation×μ times"
        rows = block[0]
        uniq = rows[::G]
        assert rows == [i for i in uniq for _ in range(G)], "each prompt G times in a row"
        assert len(set(uniq)) == B
    assert counting.draws == blocks

    # Chosen-but-unscored prompts are never drawn again, and the expansion is queued.
    drawer2 = PromptDrawer(state, 12)
    first = drawer2.draw(B)
    second = drawer2.draw(B)  # prefetch before `first` is scored
    pool1, pool2 = first + drawer2.extras_for(first), second + drawer2.extras_for(second)
    assert not set(pool1) & set(pool2)
    assert len(pool1) == (5 if mode == "rlcs" else B)
    drawer2.settle(pool1)
    assert set(drawer2.pending) == set(pool2)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("where", ["../elsewhere/x.png", "ABS_OUTSIDE", "img/../../elsewhere/x.png"])
def test_rl_media_paths_may_name_any_local_file(tmp_path, where):
    """A local user's prompts may name images anywhere they can read (as SFT data may):
    '..' and absolute paths elsewhere resolve; relative ones against the prompt file."""
    from studio.engine.train.rl import load_prompts

    data_dir = tmp_path / "data"
    (tmp_path / "elsewhere").mkdir()
    data_dir.mkdir()
    outside = tmp_path / "elsewhere" / "x.png"
    shutil.copy(PHOTO, outside)
    ref = str(outside) if where == "ABS_OUTSIDE" else where
    f = data_dir / "p.jsonl"
    f.write_text(json.dumps({"prompt": "<image>Cups?", "images": [ref], "answer": "1"}) + "\n")
    assert load_prompts(f)[0].images == [str(outside.resolve())]


def test_rl_media_urls_are_refused_with_the_row_named(tmp_path):
    from studio.engine.train.rl import load_prompts
    from studio.errors import DataError

    f = tmp_path / "p.jsonl"
    shutil.copy(PHOTO, tmp_path / "x.png")
    f.write_text(json.dumps({"prompt": "<image>Cups?", "images": ["x.png"], "answer": "1"}) + "\n"
                 + json.dumps({"prompt": "<image>Cups?", "images": ["http://x.org/a.png"], "answer": "1"}) + "\n")
    with pytest.raises(DataError, match=r"p.jsonl row 2 \(line 2\): media 'http://x.org/a.png' is a URL; download"):
        load_prompts(f)


def test_rl_row_with_images_and_a_video_is_refused(tmp_path):
    from studio.engine.train.rl import load_prompts
    from studio.errors import DataError

    rows = [{"prompt": "<image><video>What?", "images": [str(PHOTO)], "videos": [str(VIDEO)], "answer": "cat"}]
    with pytest.raises(DataError, match="row 1 holds 1 image and 1 video; GLM-4.1V takes images or one video"):
        load_prompts(_write(tmp_path / "p.jsonl", rows))


def test_sample_rl_prompts_load_with_their_video_inside_the_folder():
    from studio.engine.train.rl import load_prompts

    prompts = load_prompts(SAMPLE_DATA / "rl" / "prompts.jsonl")
    videos = {v for p in prompts for v in p.videos}
    assert videos == {str((SAMPLE_DATA / "rl" / "videos" / "clip.mp4").resolve())}



def test_prompt_without_answer_names_the_row(tmp_path):
    from studio.engine.train.rl import load_prompts
    from studio.errors import DataError

    rows = _image_rows(3)
    rows[1].pop("answer")
    with pytest.raises(DataError, match=r"no reference answer in row 2\. "):
        load_prompts(_write(tmp_path / "p.jsonl", rows))


def test_unparseable_reference_is_reported(tmp_path):
    from studio.engine.train.rl import check_references, load_prompts
    from studio.errors import DataError

    rows = _image_rows(2)
    rows[0]["answer"] = "a few"
    prompts = load_prompts(_write(tmp_path / "p.jsonl", rows))
    with pytest.raises(DataError, match=r"row 1: reference 'a few' is not a whole number"):
        check_references(prompts)


def test_word_choices_from_studio_tasks_are_scored_as_exact(tmp_path):
    from studio.engine.train.rl import check_references, load_prompts

    rows = [{"prompt": "<image>Left or right?", "images": [str(PHOTO)], "answer": "left",
             "task_type": "choice", "choices": ["left", "right"]}]
    prompts = load_prompts(_write(tmp_path / "p.jsonl", rows))
    assert prompts[0].row["task_type"] == "exact"
    check_references(prompts)


def test_config_messages_say_what_to_change(tmp_path):
    from studio.engine.train.rl import RLRunConfig
    from studio.errors import ConfigError

    with pytest.raises(ConfigError, match="num_generations.*at least 2"):
        RLRunConfig(data="x", num_generations=1, per_device_train_batch_size=4).validate()
    with pytest.raises(ConfigError) as e:
        RLRunConfig(data="x", num_generations=4, per_device_train_batch_size=6).validate()
    assert "per_device_train_batch_size` × steps_per_generation (6 × 1 = 6) must be divisible by " \
           "num_generations (4)" in str(e.value)
    assert "multiple of 4" in str(e.value)
    with pytest.raises(ConfigError, match="unknown reward 'acurracy'; valid names: accuracy, format"):
        RLRunConfig.from_dict({"data": "x", "rewards": {"functions": ["acurracy"]}}).validate()
    with pytest.raises(ConfigError, match="mode"):
        RLRunConfig.from_dict({"data": "x", "curriculum": {"mode": "random"}}).validate()


def test_cli_creates_run_folder_and_config_round_trips(tmp_path, monkeypatch):
    from studio.cli import main
    from studio.engine.train.rl import RLRunConfig

    data = _write(tmp_path / "p.jsonl", _image_rows(4))
    runs = tmp_path / "runs"
    assert main(["rl", "--data", str(data), "--runs-dir", str(runs), "--name", "demo", "--max-steps", "7",
                 "--curriculum", "uniform", "--set", "lora_rank=8", "--dry-run"]) == 0
    (run,) = list(runs.iterdir())
    assert "-rl-demo" in run.name
    cfg = RLRunConfig.from_yaml(run / "config.yaml")
    assert (cfg.max_steps, cfg.curriculum.mode, cfg.lora_rank, cfg.output_dir) == (7, "uniform", 8, str(run))
    assert main(["rl", "--config", str(run / "config.yaml"), "--dry-run"]) == 0
    assert main(["rl", "--data", str(data), "--config", str(run / "config.yaml")]) == 2
    assert main(["rl", "--data", str(data), "--runs-dir", str(runs), "--num-generations", "1", "--dry-run"]) == 2


@pytest.mark.parametrize("case", ["empty", "columns", "no_answer", "url", "bad_reference"])
def test_refused_cli_start_leaves_no_run_folder(tmp_path, case, capsys):
    from studio.cli import main

    rows = _image_rows(4)
    if case == "columns":
        rows = [{"text": "hi", "label": "x"}] * 4
    elif case == "no_answer":
        rows[2].pop("answer")
    elif case == "url":
        rows[1]["images"] = ["https://example.org/x.png"]
    elif case == "bad_reference":
        rows[0]["answer"] = "a few"
    data = _write(tmp_path / "p.jsonl", rows)
    if case == "empty":
        data.write_text("")
    runs = tmp_path / "runs"
    assert main(["rl", "--data", str(data), "--runs-dir", str(runs), "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not runs.exists() or list(runs.iterdir()) == []


# --------------------------------------------------------------------------- training


def _train(fresh_tiny, cfg, run_dir, **kw):
    from studio.engine.train import rl

    model, processor = fresh_tiny
    return rl.train(cfg, run_dir, model=model, processor=processor, reward_fn=kw.pop("reward_fn", parity_reward),
                    **kw)


def _lora_b_norm(model) -> float:
    return sum(float(p.detach().abs().sum()) for n, p in model.named_parameters() if "lora_B" in n)


def test_three_grpo_steps_with_images(fresh_tiny, tmp_path):
    import torch

    torch.set_num_threads(1)
    model, _ = fresh_tiny
    calls = _record_loss_forwards(model)
    data = _write(tmp_path / "img.jsonl", _image_rows(8))
    run = tmp_path / "run"
    out = _train(fresh_tiny, _cfg(data, kl_every=3, eval_every=2, eval_fraction=0.25), run)
    assert out["steps"] == 3 and out["rollouts"] >= 3 * 2 * 2
    assert calls and all("pixel_values" in c and "image_grid_thw" in c and "mm_token_type_ids" in c for c in calls)
    assert (run / "adapter" / "adapter_config.json").is_file()
    adapter_cfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert "language_model" in str(adapter_cfg["target_modules"])  # LoRA on the LM only
    assert not any("visual" in n for n, _ in model.named_parameters() if "lora_" in n)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train] == [1, 2, 3]
    for key in ("rewards/mean", "rewards/std", "rollout/format_correct", "rollout/forced_answer",
                "rollout/truncated", "curriculum/tier_weight/medium", "curriculum/tier_count/hard",
                "curriculum/zero_variance_frac", "curriculum/expansion_ema", "curriculum/effective_batch",
                "completions/length_mean", "completions/length_max", "train/loss", "train/grad_norm",
                "train/learning_rate", "time/step_s", "time/generate_s", "time/reward_s", "time/update_s",
                "time/other_s"):
        assert key in train[-1], key
    assert any("kl/probe" in x for x in train)
    # where each step's wall time went: exclusive phases that add up to the step
    for x in train:
        parts = sum(v for k, v in x.items() if k.startswith("time/") and k != "time/step_s")
        assert x["time/generate_s"] > 0 and abs(parts - x["time/step_s"]) < 1e-3 * max(1.0, x["time/step_s"])
    assert any("time/eval_s" in x for x in train) and any("time/logprob_s" in x for x in train)
    log = (run / "train.log").read_text()
    assert re.search(r"step 3/3 \(100 %\) · [\d.]+ (steps/s|s/step) · 0:00 left · loss ", log), log[-1500:]
    # held-out accuracy of the model after 0 and 2 updates, and of the final model: each at
    # its own step (the step-2 point counts the rollouts of steps 1-2 only), once
    evals = {x["step"]: x for x in lines if "eval/accuracy" in x}
    assert [x["step"] for x in lines if "eval/accuracy" in x] == [0, 2, 3]
    assert evals[0]["eval/rollouts"] == 0
    assert evals[2]["eval/rollouts"] == train[1]["rollout/rollouts_total"]
    held_out = [x.split(" ", 1)[1].split(":")[0] for x in (run / "train.log").read_text().splitlines()
                if "held-out accuracy" in x]
    assert held_out == ["step 0", "step 2", "step 3"]  # train.log numbers them as metrics.jsonl does
    rollouts = [json.loads(x) for x in (run / "rollouts.jsonl").read_text().splitlines()]
    assert {"step", "prompt", "image", "completion", "reward", "tier"} <= set(rollouts[0])
    assert sorted({r["step"] for r in rollouts}) == [1, 2, 3]  # numbered like the status line and metrics
    gate = json.loads((run / "format_gate.json").read_text())
    assert gate["rate"] < 0.8 and "SFT tab" in gate["warning"]  # a random model never has the format


@pytest.mark.parametrize("beta,mu", [(0.05, 1), (0.0, 2)])
def test_kl_term_and_clipped_ratio_get_their_log_probs(fresh_tiny, tmp_path, monkeypatch, beta, mu):
    """beta > 0 needs the base model's log-probs and μ > 1 the generating policy's (GRPO
    paper Alg. 1); the studio builds TRL's batch itself, so it must put both in (a run with
    beta > 0 once stopped at step 1 with KeyError 'ref_per_token_logps')."""
    import torch

    from studio.engine.train.rl import trainer as T

    torch.set_num_threads(1)
    seen = []
    original = T._MediaForward._compute_loss

    def recording(self, model, inputs):
        seen.append({k: inputs.get(k) for k in ("old_per_token_logps", "ref_per_token_logps", "completion_mask")})
        return original(self, model, inputs)

    monkeypatch.setattr(T._MediaForward, "_compute_loss", recording)
    data = _write(tmp_path / "img.jsonl", _image_rows(8))
    out = _train(fresh_tiny, _cfg(data, max_steps=2, beta=beta, num_iterations=mu), tmp_path / "run")
    assert out["steps"] == 2 and seen
    for x in seen:
        shape = tuple(x["completion_mask"].shape)
        assert (x["ref_per_token_logps"] is not None) == (beta > 0)
        assert (x["old_per_token_logps"] is not None) == (mu > 1)
        for k in ("ref_per_token_logps", "old_per_token_logps"):
            if x[k] is not None:
                assert tuple(x[k].shape) == shape and not x[k].requires_grad and torch.isfinite(x[k]).all()
    if mu > 1:  # both updates on the one generation batch are clipped against the same old policy
        assert len(seen) == 2 and torch.equal(seen[0]["old_per_token_logps"], seen[1]["old_per_token_logps"])
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    if beta > 0:
        assert any("train/kl" in x or "kl" in x for x in lines if x["kind"] == "train")


def test_three_grpo_steps_with_video_keep_video_in_the_loss_forward(fresh_tiny, tmp_path):
    import torch

    torch.set_num_threads(1)
    model, _ = fresh_tiny
    calls = _record_loss_forwards(model)
    data = _write(tmp_path / "vid.jsonl", _video_rows(4))
    out = _train(fresh_tiny, _cfg(data, max_frames=4, video_fps=1.0), tmp_path / "run")
    assert out["steps"] == 3
    assert calls, "no loss forward ran"
    for c in calls:  # fails if TRL's forward (which drops video) were used
        assert "pixel_values_videos" in c and "video_grid_thw" in c and "mm_token_type_ids" in c, sorted(c)
    assert _lora_b_norm(model) > 0, "the adapter did not move"


def test_injected_tokens_get_no_loss(fresh_tiny):
    from studio.engine.train.rl import FORCE_TEXT, PromptEncoder, RLPrompt, RolloutGenerator

    model, processor = fresh_tiny
    gen = RolloutGenerator(processor, thinking_budget=3, answer_budget=2, eos_ids=[])
    p = RLPrompt(0, "What is shown?", [str(PHOTO)], [], "1", "counting", None, {}, 1)
    rolls = gen(model, [PromptEncoder(processor)(p)], 2)
    force = processor.tokenizer.encode(FORCE_TEXT, add_special_tokens=False)
    for r in rolls:  # no EOS allowed here, so every rollout is forced after 3 tokens
        assert r.forced and r.truncated and len(r.ids) == 3 + len(force) + 2
        assert r.ids[3:3 + len(force)] == force
        assert r.loss_mask == [1, 1, 1] + [0] * len(force) + [1, 1]
        assert "</think><answer>" in r.text


def test_cpu_plain_logps_equal_trls_fused_head(fresh_tiny):
    """On CPU the log-prob forward skips TRL's fused LM head: same log-probs, entropies and
    gradients for the completion tokens of an image prompt (padding positions 0)."""
    import torch
    from trl.trainer.utils import add_fused_lm_head

    from studio.engine.train.rl import PromptEncoder, RLPrompt
    from studio.engine.train.rl.trainer import _plain_logps

    model, processor = fresh_tiny
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    enc = PromptEncoder(processor)(RLPrompt(0, "What is shown?", [str(PHOTO)], [], "1", "counting", None, {}, 1))
    K = 5
    words = processor.tokenizer.encode("there are two red squares and one", add_special_tokens=False)[:K]
    pad = processor.tokenizer.pad_token_id or 0
    comp = torch.tensor([words[:3] + [pad, pad], words])
    ids = torch.cat([enc["input_ids"].repeat(2, 1), comp], 1)
    att = torch.cat([torch.ones_like(enc["input_ids"]).repeat(2, 1), torch.tensor([[1, 1, 1, 0, 0], [1] * 5])], 1)
    inputs = {"input_ids": ids, "attention_mask": att,
              "mm_token_type_ids": torch.cat([enc["mm_token_type_ids"].repeat(2, 1), torch.zeros_like(comp)], 1),
              "pixel_values": torch.cat([enc["pixel_values"]] * 2), "image_grid_thw": torch.cat([enc["image_grid_thw"]] * 2)}
    model.train()
    got = []
    for plain in (True, False):
        model.zero_grad(set_to_none=True)
        if plain:
            out = _plain_logps(model, dict(inputs), K, compute_entropy=True)
        else:
            labels = ids.masked_fill(att == 0, -100)
            labels[:, :-K] = -100
            out = model(**inputs, labels=labels, fused_lm_head=True)
        lp, ent = out.log_probs[:, -K:], out.entropy[:, -K:]
        lp.sum().backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        got.append((lp.detach(), ent.detach(), grads))
    (lp1, e1, g1), (lp2, e2, g2) = got
    assert lp1.shape == (2, K) and torch.allclose(lp1, lp2, atol=1e-4) and torch.allclose(e1, e2, atol=1e-4)
    assert (lp1[0, 3:] == 0).all() and (e1[0, 3:] == 0).all()  # padding
    assert g1.keys() == g2.keys() and g1
    for k in g2:
        assert torch.allclose(g1[k], g2[k], rtol=1e-3, atol=1e-5), k


def test_too_easy_prompts_stop_the_run(fresh_tiny, tmp_path):
    data = _write(tmp_path / "easy.jsonl", _image_rows(6))
    run = tmp_path / "run"
    out = _train(fresh_tiny, _cfg(data, max_steps=20, curriculum={"too_easy_patience": 2}), run,
                 reward_fn=lambda completions, **kw: [1.0] * len(completions))
    assert out["steps"] == 2
    assert "all-correct" in out["stop_reason"] and "harder prompts" in out["stop_reason"]
    assert "all-correct" in (run / "stop_reason.txt").read_text()


def test_resume_restores_the_curriculum_state(fresh_tiny, tiny_path, tmp_path):
    from studio.config import ModelSpec
    from studio.engine.train import rl
    from studio.engine.train.curriculum import CurriculumState
    from studio.engine.infer.models import load

    data = _write(tmp_path / "img.jsonl", _image_rows(8))
    run = tmp_path / "run"
    cfg = _cfg(data, max_steps=2, save_every=2)
    _train(fresh_tiny, cfg, run)
    ckpt = run / "checkpoints" / "checkpoint-2"
    saved = CurriculumState.load(ckpt / "curriculum.json")
    assert saved.step == 2
    model, processor = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    cfg.max_steps = 3
    trainer, found = rl.build_trainer(cfg, run, model=model, processor=processor, reward_fn=parity_reward,
                                      resume=True)
    assert found == ckpt
    assert trainer.studio.state == saved  # tiers, weights, EMA, pass rates and rng all restored
    assert trainer.rollouts_total > 0
    trainer.train(resume_from_checkpoint=str(found))
    assert trainer.state.global_step == 3
    assert trainer.studio.state.step == 3


def test_redone_steps_replace_the_lost_ones_in_rollouts_and_held_out_points(fresh_tiny, tiny_path, tmp_path):
    """A crash after checkpoint-2 loses step 3, which had written rollouts and held-out points;
    resuming redoes it: readers see one set of rollouts and one held-out point per step."""
    from studio.config import ModelSpec
    from studio.engine.infer.models import load
    from studio.engine.train.metrics import read_metrics
    from studio.ui.tabs.rl import read_rollouts

    data = _write(tmp_path / "img.jsonl", _image_rows(8))
    run = tmp_path / "run"
    cfg = _cfg(data, max_steps=3, save_every=2, eval_every=2, eval_fraction=0.25, rollouts_logged_per_step=2)
    _train(fresh_tiny, cfg, run)
    shutil.rmtree(run / "checkpoints" / "checkpoint-3")  # the crash: step 3 was written, not saved
    model, processor = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    _train((model, processor), cfg, run, resume=True)
    rows = read_rollouts(run, last_steps=10, limit=100)
    assert [r["step"] for r in rows] == [1, 1, 2, 2, 3, 3]
    assert [r["step"] for r in read_metrics(run, kind="eval")] == [0, 2, 3]
    held_out = [x for x in (run / "train.log").read_text().splitlines() if "held-out accuracy" in x]
    assert len(held_out) == 4 and held_out[-1].split(" ")[2] == "3:"  # step 2 is not scored again


def test_resume_without_checkpoint_says_so(fresh_tiny, tmp_path):
    from studio.engine.train import rl
    from studio.errors import InputError

    data = _write(tmp_path / "img.jsonl", _image_rows(4))
    model, processor = fresh_tiny
    with pytest.raises(InputError, match="no checkpoint to resume"):
        rl.build_trainer(_cfg(data), tmp_path / "run", model=model, processor=processor,
                         reward_fn=parity_reward, resume=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_vllm_flag_without_vllm_or_gpu_says_why(tmp_path):
    from studio.engine.train import rl
    from studio.errors import ConfigError

    ok, why = rl.vllm_available()
    if ok:  # pragma: no cover - only on a GPU box with vLLM
        pytest.skip("vLLM and CUDA are present here")
    data = _write(tmp_path / "img.jsonl", _image_rows(4))
    import re

    with pytest.raises(ConfigError, match=re.escape(f"use_vllm` needs vLLM and a CUDA GPU: {why}")):
        rl.build_trainer(_cfg(data, use_vllm=True), tmp_path / "run", reward_fn=parity_reward)


def test_no_variance_skips_the_optimizer_step(fresh_tiny, tmp_path):
    """Groups without reward variance give GRPO no gradient: the step is skipped and logged,
    and AdamW's momentum from the earlier step must not move the adapter either."""
    from safetensors.torch import load_file

    calls = {"n": 0}

    def reward(completions, **kw):  # call 1: format gate, call 2: step 0 — then no variance at all
        calls["n"] += 1
        return parity_reward(completions) if calls["n"] <= 2 else [0.0] * len(completions)

    data = _write(tmp_path / "img.jsonl", _image_rows(6))
    run = tmp_path / "run"
    out = _train(fresh_tiny, _cfg(data, max_steps=3, save_every=1, save_total_limit=5), run, reward_fn=reward)
    assert out["steps"] == 3
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x["kind"] == "train"]
    assert [x["curriculum/skipped_update"] for x in train] == [0.0, 1.0, 1.0]
    assert "update skipped" in (run / "train.log").read_text()
    after1 = load_file(run / "checkpoints" / "checkpoint-1" / "adapter_model.safetensors")
    after3 = load_file(run / "checkpoints" / "checkpoint-3" / "adapter_model.safetensors")
    assert any(float(v.abs().sum()) > 0 for k, v in after1.items() if "lora_B" in k), "step 1 should train"
    for k in after1:
        assert (after1[k] == after3[k]).all(), f"{k} moved during skipped steps"


def test_a_resumed_rl_run_stopped_before_its_next_step_keeps_its_checkpoint(tmp_path, monkeypatch):
    """A resumed run stopped before its next step says that it keeps its checkpoint (not
    "nothing was trained; start the run again"), and the "nothing trained" clean-up removes
    nothing from its folder (checkpoint, metrics, TensorBoard events)."""
    from conftest import make_trained_folder
    from studio.engine.train.phase import StoppedBeforeTraining
    from studio.engine.train.rl import run as R
    from studio.engine.train.runs import read_status

    ck = make_trained_folder(tmp_path, 4, "checkpoints")  # RL keeps its checkpoints in checkpoints/

    def stopped(*a, **kw):
        raise StoppedBeforeTraining("while loading the model")

    monkeypatch.setattr(R, "build_trainer", stopped)
    out = R.train(_cfg(_write(tmp_path / "p.jsonl", _image_rows(4))), tmp_path, resume=True)
    want = "stopped while loading the model, before step 5: the run keeps its checkpoint at step 4; start it again to resume"
    assert out["stop_reason"] == want and out["steps"] == 4 and out["adapter"] is None, out
    assert (tmp_path / "train.log").read_text().strip().splitlines()[-1].endswith(want)
    assert (ck / "trainer_state.json").is_file() and (tmp_path / "metrics.jsonl").is_file()
    assert (tmp_path / "tb" / "events.out.tfevents.1").is_file() and (tmp_path / "progress.json").is_file()
    st = read_status(tmp_path)
    assert not st.get("before_training") and st["stopped_before_step"] == 5


def test_stop_during_offline_grading_ends_the_run_within_a_chunk(fresh_tiny, tmp_path):
    """The job panel's Stop during RLCS grading (a minute and more on the workshop recipe) ends
    the run at the next chunk of prompts, status ``stopped``, with no adapter and a reason —
    it used to run grading to the end and be killed after the grace period."""
    from studio.engine.train.runs import read_status, track_run

    class AfterFirstChunk:  # a StopFlag that is set once the first chunk was graded
        calls = 0

        def __bool__(self):  # asked once after the model load, then before each chunk
            AfterFirstChunk.calls += 1
            return AfterFirstChunk.calls > 2

    data = _write(tmp_path / "p.jsonl", _image_rows(40))
    run = tmp_path / "run"
    run.mkdir()  # the CLI makes the run folder before training
    flag = AfterFirstChunk()
    with track_run(run, "rl", stop_flag=flag):
        out = _train(fresh_tiny, _cfg(data, curriculum={"offline_grading": True, "offline_samples": 2}), run,
                     stop_flag=flag)
    assert out["adapter"] is None and out["steps"] == 0
    assert "offline grading (32 of 40 prompts graded)" in out["stop_reason"]
    st = read_status(run)  # the grading's progress.json goes: the run says it stopped before training
    assert st["status"] == "stopped" and st["before_training"] == out["stop_reason"]
    assert not (run / "progress.json").exists()
    assert not (run / "adapter").exists() and not (run / "checkpoints").exists()
    assert (run / "train.log").read_text().strip().splitlines()[-1].endswith("start the run again")
