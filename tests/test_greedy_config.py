"""Greedy generation configs stay valid once transformers merges the checkpoint's
sampling defaults into them (the GLM-4.6V-Flash replica's temperature 0.8 / top_p 0.6
printed "generation flags are not valid" during RL's greedy passes)."""

from __future__ import annotations

import copy

import pytest


def _merged(cfg, checkpoint_cfg):
    """What ``model.generate(generation_config=cfg)`` does first: the checkpoint's values
    fill every field the passed config left as None."""
    cfg = copy.deepcopy(cfg)
    cfg.update(**checkpoint_cfg.to_dict(), defaults_only=True)
    return cfg


def test_rollout_greedy_config_stays_valid_after_the_checkpoint_merge(glm46v_path):
    from transformers import AutoProcessor, GenerationConfig

    from studio.engine.train.rl.rollouts import RolloutGenerator

    ckpt = GenerationConfig.from_pretrained(glm46v_path)
    assert (ckpt.temperature, ckpt.top_p) == (0.8, 0.6)  # the replica's sampling defaults
    gen = RolloutGenerator(AutoProcessor.from_pretrained(glm46v_path), thinking_budget=4, answer_budget=2)
    greedy = _merged(gen._gen_config(8, greedy=True), ckpt)
    greedy.validate(strict=True)  # raises on the flags transformers warns about
    assert (greedy.do_sample, greedy.temperature, greedy.top_p) == (False, 1.0, 1.0)
    sampled = _merged(gen._gen_config(8, greedy=False), ckpt)
    sampled.validate(strict=True)
    # the old greedy config (None for temperature/top_p) picks up 0.8 / 0.6 and fails
    old = _merged(GenerationConfig(do_sample=False, top_k=50, top_p=None, temperature=None), ckpt)
    with pytest.raises(ValueError, match="temperature"):
        old.validate(strict=True)
