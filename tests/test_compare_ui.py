"""Compare tab through a real Gradio server and gradio_client (tiny model, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import launch_tab

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")




@pytest.fixture(scope="module")
def served(tiny_path, tmp_path_factory):
    yield from _serve(tiny_path, tmp_path_factory)


@pytest.fixture(scope="module")
def served46(glm46v_path, tmp_path_factory):
    """As ``served``, on the tiny GLM-4.6V-Flash replica (a model with a thinking switch)."""
    yield from _serve(glm46v_path, tmp_path_factory)


def _serve(model_path, tmp_path_factory):
    from studio.config import ModelSpec
    from studio.ui.context import AppContext
    from studio.ui.tabs import compare as tab

    runs = tmp_path_factory.mktemp("runs")
    ctx = AppContext(model=ModelSpec(name_or_path=str(model_path), device="cpu"), runs_dir=runs)
    demo = launch_tab(tab, ctx)
    # warm the shared registry (the key Compare uses), so the test times the comparison itself
    ctx.registry.get(ModelSpec(name_or_path=str(model_path)))
    try:
        yield demo, gradio_client.Client(demo.local_url, verbose=False), runs, str(model_path)
    finally:
        demo.close()


def _args(model, text="What color is the square? <b>bold</b>", files=(), a_mode="base", b_adapter="none",
          thinking=(True, True)):
    msg = {"text": text, "files": [gradio_client.handle_file(str(f)) for f in files]}
    return [msg, model, "none", a_mode, model, b_adapter, "chat",
            0.0, 0.9, 2, 16, 0, 8, 7, "", "", *thinking]


def test_one_comparison_then_votes(served, tmp_path):
    from PIL import Image

    _, client, runs, model = served
    # a vote before any comparison is ignored with a message (not an error)
    status, _ = client.predict(api_name="/vote_a")
    assert "no finished comparison" in status
    assert not list(Path(runs).glob("compare-votes/*/votes.jsonl"))

    img = tmp_path / "sq.png"
    Image.new("RGB", (56, 56), (0, 0, 255)).save(img)
    out = client.predict(*_args(model, files=[img]), api_name="/compare")
    chat_a, chat_b, stats_a, stats_b, head_a, head_b, plan, status = out  # gr.State stays on the server
    assert "TTFT" in stats_a and "tok/s" in stats_a and "thinking" in stats_b and "forced answer: no" in stats_b
    assert "completion prompt" in head_a and "Chat template" in head_b
    assert "Memory plan" in plan and "share one loaded copy" in plan
    assert "Seed 7" in status
    # the user's text is escaped in both panes; both panes show the image
    texts_a = json.dumps(chat_a)  # a word joiner after "<": shown as typed, never a tag
    assert "<\\u2060b>bold<\\u2060/b>" in texts_a and "<b>bold</b>" not in texts_a
    assert any(isinstance(m.get("content"), dict) or "file" in json.dumps(m) for m in chat_a)
    assert [m["role"] for m in chat_b].count("assistant") >= 1

    status, download = client.predict(api_name="/vote_b")
    assert "Recorded" in status and "B is better" in status
    (vote_file,) = Path(runs).glob("compare-votes/*/votes.jsonl")
    rows = [json.loads(line) for line in vote_file.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["vote"] == "B" and rows[0]["modes"] == {"A": "base", "B": "chat"}
    assert rows[0]["settings"]["gen"]["seed"] == 7
    assert (vote_file.parent / rows[0]["media"][0]).read_bytes() == img.read_bytes()
    path = download.get("value") if isinstance(download, dict) else download
    import zipfile

    with zipfile.ZipFile(path) as z:  # the download: the vote file and its media, paths intact
        assert z.read("votes.jsonl").decode() == vote_file.read_text()
        assert z.read(rows[0]["media"][0]) == img.read_bytes()
    # a second vote on the same comparison is ignored
    status, _ = client.predict(api_name="/vote_a")
    assert "already has a vote" in status
    assert len(vote_file.read_text().splitlines()) == 1


def test_bad_input_is_a_gradio_error_and_app_keeps_working(served, tmp_path):
    _, client, runs, model = served
    with pytest.raises(Exception, match="Type a question"):
        client.predict(*_args(model, text="  "), api_name="/compare")
    bad = tmp_path / "no-adapter"
    bad.mkdir()
    with pytest.raises(Exception, match="no adapter_config.json"):
        client.predict(*_args(model, b_adapter=str(bad)), api_name="/compare")
    plan, head_a, _ = client.predict(model, "none", "base", "/does/not/exist", "none", "chat",
                                     api_name="/compare_plan")
    assert "does not exist" in plan
    out = client.predict(*_args(model, text="2+2?"), api_name="/compare")
    assert "TTFT" in out[2]


def test_thinking_off_on_a_model_without_a_switch_is_refused(served):
    """GLM-4.1V has no thinking switch: Thinking B off is refused before anything runs,
    saying what to change; the plan says so too; a base side ignores the switch."""
    _, client, _, model = served
    with pytest.raises(Exception) as ei:
        client.predict(*_args(model, text="2+2?", thinking=(True, False)), api_name="/compare")
    msg = str(ei.value)
    assert "Side B" in msg and "no thinking switch" in msg and "Turn Thinking B back on" in msg
    assert "Traceback" not in msg
    plan, _, head_b = client.predict(model, "none", "chat", model, "none", "chat", True, False,
                                     api_name="/compare_plan")
    assert "Not done" in plan and "no thinking switch" in plan
    out = client.predict(*_args(model, text="2+2?", thinking=(False, True)), api_name="/compare")  # A is base
    assert "TTFT" in out[2] and "thinking off" not in out[4]


def test_thinking_on_vs_off_on_one_glm46v_model(served46, prompts):
    """The same GLM-4.6V-Flash model on both sides, B with thinking off: B's prompt is the
    template's thinking-off rendering (``/nothink`` … ``<think></think>``), A's the default;
    the headers, plan and the vote row say which side thought."""
    _, client, runs, model = served46
    out = client.predict(*_args(model, text="Hi", a_mode="chat", thinking=(True, False)), api_name="/compare")
    chat_a, chat_b, stats_a, stats_b, head_a, head_b, plan, status = out
    chat_prompts = [p for p in prompts if "<|user|>" in p]
    assert chat_prompts[0].endswith("<|user|>\nHi<|assistant|>\n")
    assert chat_prompts[-1].endswith("<|user|>\nHi/nothink<|assistant|>\n<think></think>\n")
    assert "thinking off" in head_b and "thinking switched off" in head_b and "thinking off" not in head_a
    assert "Memory plan" in plan and "Seed 7" in status and "only the thinking switch differs" in status
    assert "(0 thinking + " in stats_b
    client.predict(api_name="/vote_tie")
    (vote_file,) = Path(runs).glob("compare-votes/*/votes.jsonl")
    row = json.loads(vote_file.read_text().splitlines()[-1])
    assert row["thinking"] == {"A": True, "B": False} and row["modes"] == {"A": "chat", "B": "chat"}


def test_token_counts_agree_and_the_download_is_named(tmp_path):
    """Issue 28.8: one reply showed "18 tokens · 10 thinking" in Chat and "thinking 10 /
    answer 6 tokens" in Compare; both now give one split that adds up. The votes download
    button names the file it saves (a zip with votes.jsonl and its images)."""
    from studio.engine.infer.chat import Stats
    from studio.engine.infer.compare import VoteLog
    from studio.ui import render
    from studio.ui.i18n import tr
    from studio.ui.tabs.compare import stats_line

    s = Stats(new_tokens=18, thinking_tokens=10, answer_tokens=6)
    split = "18 tokens (10 thinking + 6 answer + 2 tags/end)"
    assert render.token_counts(s) == split
    assert split in render.stats_line(s) and split in stats_line(s)
    assert render.token_counts(Stats(new_tokens=1, answer_tokens=1)) == "1 token"
    assert "16 tokens (0 thinking + 16 answer + 0 tags/end)" in stats_line(Stats(new_tokens=16, answer_tokens=16))
    (tmp_path / "votes").mkdir()
    vlog = VoteLog(tmp_path / "votes")
    assert vlog.archive().name in tr("cmp.download") and "votes.jsonl" in tr("cmp.download")


def test_follow_up_continues_each_sides_conversation(served, prompts):
    """Issue 28.2: the second question is a follow-up: each side is asked with its own first
    question and answer (B's prompt holds B's answer, not A's), and both panes show the two
    turns; New comparison starts over. Driven through the page's handlers on the server
    (the thread lives in the session's state, which an API client cannot send)."""
    from types import SimpleNamespace

    from studio.config import ModelSpec
    from studio.ui.context import AppContext
    from studio.ui.tabs import compare as tab
    from studio.ui.tabs.compare_thread import MAX_TURNS

    _, _, runs, model = served
    with gr.Blocks() as demo:
        tab.build(AppContext(model=ModelSpec(name_or_path=model, device="cpu"), runs_dir=runs))
    compare = next(f.fn for f in demo.fns.values() if f.api_name == "compare")
    req = SimpleNamespace(session_hash="follow-1")

    def ask(text, thread):
        args = _args(model, text=text)
        args[0] = {"text": text, "files": []}
        *_, last = list(compare(*args, thread, request=req))
        return last

    first = ask("How many red circles?", None)
    thread = first[-1]
    assert len(thread.turns) == 1
    answer_a, answer_b = thread.turns[0].answers["A"], thread.turns[0].answers["B"]
    prompts.clear()
    second = ask("And blue ones?", thread)
    b_prompt = prompts[-1]  # side B (chat): its own first turn, then the new question
    assert "How many red circles?" in b_prompt and "And blue ones?" in b_prompt
    from studio.engine.infer import reasoning

    assert reasoning.strip_thinking(answer_b).strip() in b_prompt
    assert second[7].sides["A"].prompt_text.count("Question:") == 2  # A (base): its own Q/A pair first
    assert answer_a.strip() in second[7].sides["A"].prompt_text and second[7].turn == 2
    pane_b = json.dumps(second[1])
    assert "How many red circles?" in pane_b and "And blue ones?" in pane_b
    assert len(second[-1].turns) == 2
    # New comparison: the thread is gone, the next question starts a new conversation
    new = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "new_comparison")
    assert new()[-1] is None
    prompts.clear()
    ask("Fresh question", None)
    assert "How many red circles?" not in prompts[-1]
    # the cap: a thread of MAX_TURNS questions takes no more
    full = second[-1]
    full.turns = full.turns * (MAX_TURNS // 2)
    with pytest.raises(gr.Error, match="New comparison"):
        ask("One more", full)
