"""The Chat tab's model/adapter status line (:func:`studio.ui.tabs.chat_state.model_status`):
the adapter a message runs with shows above the chat without opening the *Model*
accordion, escaped, and in public mode without a server path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import ModelSpec
from studio.ui.context import AppContext
from studio.ui.tabs.chat import NO_ADAPTER
from studio.ui.tabs.chat_state import model_status


def _runs(tmp_path: Path) -> Path:
    """A runs folder holding one run with an adapter (the two files public mode checks)."""
    adapter = tmp_path / "runs" / "20260101-000000-sft-demo" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    return tmp_path / "runs"


def _ctx(runs: Path, model: str = "toy-thinking", public: bool = False) -> AppContext:
    return AppContext(model=ModelSpec(name_or_path=model, device="cpu"), runs_dir=runs, public=public)


@pytest.mark.parametrize("value", [NO_ADAPTER, None, "", "none"])
def test_base_model_says_no_adapter(tmp_path, value):
    line = model_status(_ctx(_runs(tmp_path)), value)
    assert 'class="chat-model-status"' in line
    assert "Model: <b>toy-thinking</b>" in line and "no adapter (base model)" in line


def test_full_app_names_the_adapter_folder(tmp_path, monkeypatch):
    runs = _runs(tmp_path)
    monkeypatch.chdir(tmp_path)  # the folder shows relative to where the app was started
    line = model_status(_ctx(runs), "20260101-000000-sft-demo/adapter")
    assert "adapter: <b>runs/20260101-000000-sft-demo/adapter</b>" in line
    elsewhere = tmp_path.parent / "elsewhere" / "adapter"  # a folder handed over from outside the runs folder
    assert f"adapter: <b>{elsewhere}</b>" in model_status(_ctx(runs), str(elsewhere))


def test_everything_shown_is_escaped(tmp_path):
    line = model_status(_ctx(_runs(tmp_path), model="<img src=x onerror=alert(1)>"), "<script>x</script>")
    assert "<script>" not in line and "<img" not in line
    assert "&lt;script&gt;" in line and "&lt;img src=x" in line
    assert 'title="Model: &lt;img' in line  # the tooltip is the plain text, quoted safely


def test_public_mode_shows_the_run_name_not_a_server_path(tmp_path):
    runs = _runs(tmp_path)
    line = model_status(_ctx(runs, public=True), "20260101-000000-sft-demo/adapter")
    assert "adapter: <b>20260101-000000-sft-demo</b>" in line
    assert str(tmp_path) not in line and "runs/" not in line
    for bad in (str(runs / "20260101-000000-sft-demo" / "adapter"), "../../etc", "/etc/passwd", "nope/adapter"):
        line = model_status(_ctx(runs, public=True), bad)
        assert "adapter: <b>your adapter</b>" in line, bad
        assert str(tmp_path) not in line and "etc" not in line and "nope" not in line


def test_adapter_hint_names_both_try_it_buttons():
    from studio.ui.i18n import tr

    info = tr("chat.adapter_info", "en")
    assert tr("common.try_in_chat", "en") in info and "SFT" in info and "RL" in info
    assert tr("common.try_in_chat", "zh") in tr("chat.adapter_info", "zh")
