"""report_to: tensorboard by default, trackio/wandb only when installed, clear errors."""

from __future__ import annotations

import importlib.util

import pytest

from studio.engine.train import reporting
from studio.errors import ConfigError


def test_tensorboard_points_at_run_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    assert reporting.resolve(["tensorboard"], tmp_path) == ["tensorboard"]
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tb")
    assert "tensorboard" in reporting.available()


@pytest.mark.parametrize("value", [None, "none", ["none"], []])
def test_none(tmp_path, value):
    assert reporting.resolve(value, tmp_path) == []


def test_unknown_and_missing(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown; choose from tensorboard"):
        reporting.resolve(["mlflowx"], tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    with pytest.raises(ConfigError, match="pip install wandb"):
        reporting.resolve(["wandb"], tmp_path)


def test_sft_config_rejects_unknown_report_to():
    from studio.engine.train.sft import SFTRunConfig

    with pytest.raises(ConfigError, match="report_to"):
        SFTRunConfig(data="x.jsonl", report_to=["tensorbored"]).validate()
