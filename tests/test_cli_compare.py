"""`studio compare` on the command line: --no-color, both sides' thinking switches refused
before side A runs, the decode rate of one-token replies; `studio --help`'s sft line."""

from __future__ import annotations

import sys

import pytest

from studio.engine.infer import reasoning
from studio.engine.infer.chat import AnswerDelta, Done, Stats, ThinkingDelta
from studio.engine.infer.compare import Comparer, CompareSettings, SideEvent, SideSpec, SideStart
from studio.errors import InputError


def _fake_stream(self, a, b, question, media=None, settings=None, **kw):
    yield SideStart("A", a.label(), "chat", "chat template")
    yield SideEvent("A", ThinkingDelta("count the circles"))
    yield SideEvent("A", AnswerDelta("4"))
    yield SideEvent("A", Done(text="4", parsed=reasoning.parse("4"), stats=Stats(new_tokens=1, answer_tokens=1)))


@pytest.mark.parametrize("flags,env,coloured", [([], {}, True), (["--no-color"], {}, False), ([], {"NO_COLOR": "1"}, False)])
def test_compare_accepts_no_color_and_dims_thinking_only_on_a_colour_terminal(
        tiny_path, monkeypatch, capsys, flags, env, coloured):
    from studio.cli import main

    monkeypatch.setattr(Comparer, "stream", _fake_stream)
    monkeypatch.delenv("NO_COLOR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rc = main(["compare", "--a", str(tiny_path), "--b", str(tiny_path), "--device", "cpu", *flags, "How many?"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert ("\033[2m" in out) is coloured
    assert "count the circles" in out
    # one token has no decode rate: never "0.0 tok/s"
    assert "n/a tok/s" in out and "0.0 tok/s" not in out


def test_thinking_off_on_a_glm41v_side_is_refused_before_side_a_runs(tiny_path, capsys):
    from studio.cli import main

    rc = main(["compare", "--a", str(tiny_path), "--b", str(tiny_path), "--b-no-thinking", "--device", "cpu",
               "--max-new-tokens", "2", "Hi"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("error: Side B (") and "no thinking switch" in err and "--b-no-thinking" in err
    assert "── A" not in out and "Memory plan" not in out


def test_engine_refuses_with_the_loaded_family_when_files_were_not_there_before(tiny_path, monkeypatch):
    """A hub id not downloaded yet passes the file check; the loaded family refuses it,
    still before side A generates a token."""
    from studio.engine.infer import models

    monkeypatch.setattr(models, "checkpoint_family", lambda name: None)
    events = []
    with pytest.raises(InputError, match="Side B .* no thinking switch"):
        for ev in Comparer().stream(SideSpec(str(tiny_path)), SideSpec(str(tiny_path), thinking=False), "Hi",
                                    settings=CompareSettings(device="cpu")):
            events.append(ev)
    assert events == []


def test_rate_text():
    assert Stats(new_tokens=2, tokens_per_s=12.34).rate_text == "12.3 tok/s"
    assert Stats(new_tokens=1).rate_text == Stats(new_tokens=0).rate_text == "n/a tok/s"


def test_help_describes_sft_as_lora_qlora_or_full(capsys):
    from studio.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "sft fine-tune into the think/answer format: LoRA, QLoRA or full fine-tuning" in text
    assert "LoRA/QLoRA fine-tune" not in text
