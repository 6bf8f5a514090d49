"""The Chat tab through gradio_client (in-process app), and the `studio chat` / `studio ui` CLIs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import SAMPLE_DATA, launch_tab, launch_tiny_app

PHOTO = SAMPLE_DATA / "photos" / "chelsea.jpg"
CLIP = SAMPLE_DATA / "video" / "clip.mp4"
PDF = SAMPLE_DATA / "docs" / "sample.pdf"

# A short, deterministic reply: greedy and few tokens.
FAST = dict(temperature_=0.0, max_new_=6)




@pytest.fixture(scope="module")
def app(tiny_path):
    """(client, ctx) of the app launched in-process on the tiny model."""
    from gradio_client import Client

    ctx, demo = launch_tiny_app(tiny_path)
    try:
        yield Client(demo.local_url, verbose=False), ctx, demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def app46(glm46v_path):
    """(client, ctx) of the Chat tab alone on the tiny GLM-4.6V-Flash replica."""
    from gradio_client import Client

    from studio.config import ModelSpec
    from studio.ui.context import AppContext
    from studio.ui.tabs import chat as tab

    ctx = AppContext(model=ModelSpec(name_or_path=str(glm46v_path), device="cpu"))
    ctx.registry.get(ctx.model)
    demo = launch_tab(tab, ctx)
    try:
        yield Client(demo.local_url, verbose=False), ctx
    finally:
        demo.close()


def _chat(client, text, files=(), **kw):
    from gradio_client import handle_file

    args = dict(FAST)
    args.update(kw)
    msg = {"text": text, "files": [handle_file(str(f)) for f in files]}
    return client.submit(msg, api_name="/chat", **args)


def _texts(chatbot, role=None):
    out = []
    for m in chatbot:
        if role and m["role"] != role:
            continue
        for c in m["content"]:
            if c.get("type") == "text":
                out.append(c["text"])
    return out


def _files(chatbot):
    return [c["file"] for m in chatbot for c in m["content"] if c.get("type") == "file"]


def _error_of(job) -> str:
    with pytest.raises(Exception) as ei:
        job.result()
    return str(ei.value)


def test_image_question_streams_a_reply(app):
    client, ctx, _ = app
    client.predict(api_name="/clear")
    job = _chat(client, "What is in this picture?", [PHOTO])
    chatbot, _, stats = job.result()
    outputs = job.outputs()
    assert len(outputs) >= 2  # the user's turn shows before the reply streams in
    first = outputs[0][0]
    assert [m["role"] for m in first] == ["user", "user"]
    assert [m["role"] for m in chatbot[:2]] == ["user", "user"]
    assert Path(_files(chatbot[:1])[0]).name == PHOTO.name
    assert _texts(chatbot, "user") == ["What is in this picture?"]
    answer = _texts(chatbot, "assistant")
    assert len(answer) == 1 and "tokens ·" in answer[0] and "tok/s" in answer[0] and "TTFT" in answer[0]
    assert stats.startswith("6 tokens") or "cut at max new tokens" in stats or "tokens ·" in stats


def test_estimate_shows_visual_tokens_before_sending(app, tiny):
    from gradio_client import handle_file

    from studio.engine.infer import media

    client, _, _ = app
    out = client.predict({"text": "", "files": [handle_file(str(PHOTO))]}, api_name="/estimate")
    n = media.estimate_visual_tokens(media.prepare_turn_media([PHOTO]), tiny[1])
    assert f"≈ **{n:,} visual tokens** (1 image)" == out
    out = client.predict({"text": "", "files": [handle_file(str(CLIP))]}, api_name="/estimate")
    assert "visual tokens** (video," in out
    out = client.predict({"text": "", "files": [handle_file(str(PDF))]}, api_name="/estimate")
    assert "visual tokens** (PDF," in out


def test_estimate_of_one_visual_token_is_singular(app, monkeypatch):
    from gradio_client import handle_file

    from studio.engine.infer import media

    client, _, _ = app
    monkeypatch.setattr(media, "estimate_visual_tokens", lambda m, processor: 1)
    out = client.predict({"text": "", "files": [handle_file(str(PHOTO))]}, api_name="/estimate")
    assert out == "≈ **1 visual token** (1 image)"


def _bad_cases(tmp: Path):
    from PIL import Image

    empty = tmp / "empty.jpg"
    empty.write_bytes(b"")
    fake = tmp / "fake.jpg"
    fake.write_text("this is not an image")
    small = []
    for i in range(11):
        p = tmp / f"img{i}.png"
        Image.new("RGB", (40, 40), (i * 20, 0, 0)).save(p)
        small.append(p)
    return [
        ("0-byte file", "Describe.", [empty], "empty"),
        ("text as .jpg", "Describe.", [fake], "fake.jpg"),
        ("11 images", "Describe.", small, "at most 10 images"),
        ("image + video", "Describe.", [small[0], CLIP], "cannot be mixed"),
        ("2 videos", "Describe.", [CLIP, CLIP], "only 1 video"),
        ("100k prompt", "word " * 20_000, [], "this model reads at most 4,096"),
    ]


def test_bad_inputs_show_the_message_and_the_app_keeps_working(app, tmp_path):
    client, _, _ = app
    client.predict(api_name="/clear")
    for name, text, files, expected in _bad_cases(tmp_path):
        msg = _error_of(_chat(client, text, files))
        assert expected in msg, f"{name}: {msg}"
        assert "Traceback" not in msg
    # a good request afterwards works, and no failed turn is left in the conversation
    chatbot, _, _ = _chat(client, "What is in this picture?", [PHOTO]).result()
    assert _texts(chatbot, "user") == ["What is in this picture?"]
    assert len(_texts(chatbot, "assistant")) == 1


def test_stop_ends_this_sessions_generation_within_a_second(app, tiny):
    from test_chat_engine import BanEnd, _eos

    client, ctx, _ = app
    client.predict(api_name="/clear")
    ctx.extra["chat_logits_processors"] = lambda: [BanEnd(_eos(tiny[0]))]
    try:
        job = _chat(client, "Go on forever.", max_new_=4000)
        deadline = time.time() + 20
        while len(job.outputs()) < 3 and time.time() < deadline:  # tokens are streaming
            time.sleep(0.05)
        assert not job.done()
        t0 = time.perf_counter()
        client.predict(api_name="/stop")
        chatbot, _, stats = job.result(timeout=10)
        elapsed = time.perf_counter() - t0
    finally:
        ctx.extra.pop("chat_logits_processors", None)
    assert elapsed < 1.5, f"stop took {elapsed:.2f} s"
    assert "stopped" in stats
    n = int(stats.split(" tokens")[0])
    assert 0 < n < 4000


def test_model_html_is_escaped_and_boxes_are_drawn(app, tiny):
    from PIL import Image
    from test_chat_engine import ForceSequence

    from studio.ui.render import BOX_COLOURS

    client, ctx, _ = app
    client.predict(api_name="/clear")
    tok = tiny[1].tokenizer
    out = ("<think>is it <b>bold</b>?</think><answer><script>window.pwned=1</script> cat at "
           "<|begin_of_box|>[100,200,600,900]<|end_of_box|></answer>")
    ids = tok(out, add_special_tokens=False).input_ids
    ctx.extra["chat_logits_processors"] = lambda: [ForceSequence(ids, tok.convert_tokens_to_ids("<|user|>"))]
    try:
        chatbot, _, _ = _chat(client, "Where is the cat?", [PHOTO], max_new_=len(ids) + 2).result()
    finally:
        ctx.extra.pop("chat_logits_processors", None)
    replies = [m for m in chatbot if m["role"] == "assistant"]
    thinking = replies[0]
    assert thinking["metadata"]["title"] == "Thinking" and thinking["metadata"]["status"] == "done"
    assert thinking["content"][0]["text"] == "is it &lt;b&gt;bold&lt;/b&gt;?"
    answer = replies[1]["content"][0]["text"]
    assert answer.startswith("&lt;script&gt;window.pwned=1&lt;/script&gt; cat at [100,200,600,900]")
    assert "<script" not in answer and "<|" not in answer and "<answer>" not in answer
    boxed = Image.open(replies[2]["content"][0]["file"]).convert("RGB")
    src = Image.open(PHOTO)
    assert boxed.size == src.size
    x1, y1 = round(0.1 * src.width), round(0.2 * src.height)
    x2 = round(0.6 * src.width)
    assert boxed.getpixel(((x1 + x2) // 2, y1 + 1)) == BOX_COLOURS[0]  # top edge drawn


def test_thinking_budget_marks_the_turn_truncated(app, tiny):
    from test_chat_engine import ForceThinking, _eos

    client, ctx, _ = app
    client.predict(api_name="/clear")
    ctx.extra["chat_logits_processors"] = lambda: [ForceThinking(tiny[1].tokenizer, _eos(tiny[0]))]
    try:
        chatbot, _, stats = _chat(client, "Think.", max_new_=100, think_=8, answer_=4).result()
    finally:
        ctx.extra.pop("chat_logits_processors", None)
    thinking = [m for m in chatbot if m["role"] == "assistant"][0]
    assert thinking["metadata"]["title"] == "Thinking (thinking truncated)", (chatbot, stats)
    assert "thinking truncated" in stats and "8 thinking" in stats  # budget 8 → 8


def test_regenerate_replaces_the_last_reply_and_clear_empties(app):
    client, _, _ = app
    client.predict(api_name="/clear")
    first, _, _ = _chat(client, "Hello", temperature_=1.0, max_new_=5).result()
    again, _, _ = client.submit(api_name="/regenerate", temperature_=1.0, max_new_=5).result()
    assert len(again) == len(first) and _texts(again, "user") == ["Hello"]
    second, _, _ = _chat(client, "More").result()
    assert _texts(second, "user") == ["Hello", "More"] and len(_texts(second, "assistant")) == 2
    chatbot, *_ = client.predict(api_name="/clear")
    assert chatbot == []


def test_embedded_model_is_announced(tiny_path):
    from studio.config import ModelSpec
    from studio.ui.app import build_app
    from studio.ui.context import AppContext
    from studio.ui.tabs.chat import EMBEDDED_NOTICE

    demo = build_app(AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu")))
    md = [c["props"].get("value") for c in demo.config["components"] if c.get("type") == "markdown"]
    assert any(EMBEDDED_NOTICE in (v or "") for v in md)


# ------------------------------------------------------------------ thinking switch, checkpoint defaults


def _built_chat_tab(model: str) -> dict:
    """Props of the Chat tab's form as built for ``model`` (nothing loaded): elem_id or
    catalog key of the label → props."""
    import gradio as gr

    from studio.config import ModelSpec
    from studio.ui.context import AppContext
    from studio.ui.tabs import chat as tab

    with gr.Blocks() as demo:
        tab.build(AppContext(model=ModelSpec(name_or_path=model, device="cpu")))
    out = {}
    for c in demo.config["components"]:
        p = c["props"]
        label = str(p.get("label") or "")
        key = label.split('"key": "')[1].split('"')[0] if '"key": "' in label else label
        out[p.get("elem_id") or key] = p
    return out


def test_switch_and_sampling_sliders_follow_the_checkpoint(glm46v_path):
    """GLM-4.6V-Flash: the switch is on and enabled, the sliders start at its
    generation_config. toy-thinking (GLM-4.1V): the switch is on, disabled, and says why;
    the sliders take the keys its generation_config sets (top_k, max_new_tokens) and the
    Studio's defaults for the rest."""
    from studio.config import GenerationConfig
    from studio.ui.i18n import tr

    f46 = _built_chat_tab(str(glm46v_path))
    assert (f46["chat-thinking"]["value"], f46["chat-thinking"]["interactive"]) == (True, True)
    assert [f46[k]["value"] for k in ("common.temperature", "common.top_p", "common.top_k", "chat.rep",
                                      "max-new-tokens")] == [0.8, 0.6, 2, 1.1, 256]
    toy = _built_chat_tab("toy-thinking")
    assert (toy["chat-thinking"]["value"], toy["chat-thinking"]["interactive"]) == (True, False)
    assert "chat.thinking_fixed" in toy["chat-thinking"]["info"]
    assert "always thinks" in tr("chat.thinking_fixed", "en") and "thinking budget" in tr("chat.thinking_fixed", "en")
    d = GenerationConfig()
    assert [toy[k]["value"] for k in ("common.temperature", "common.top_p", "common.top_k", "chat.rep",
                                      "max-new-tokens")] == [d.temperature, d.top_p, 2, d.repetition_penalty, 256]


def test_checkpoint_read_at_load_updates_the_form_once(glm46v_path):
    """A checkpoint the page could not read when it was built (a hub id still downloading)
    sets the sliders and the switch when it has loaded; one read at build time is left
    alone (a change made meanwhile is kept)."""
    import gradio as gr

    from studio.engine.infer.family import from_dir
    from studio.ui.tabs.chat import follow_checkpoint

    f46 = from_dir(glm46v_path)
    temperature, top_p, top_k, rep, max_new, switch = follow_checkpoint(None, f46)
    assert (temperature, top_p, top_k, rep, max_new["value"]) == (0.8, 0.6, 2, 1.1, 256)
    assert switch["interactive"] is True
    assert follow_checkpoint(f46, f46) == [gr.skip()] * 6


def test_thinking_off_reaches_the_engine(app46, prompts):
    """GLM-4.6V-Flash with Thinking off: the prompt the model reads is the template's
    enable_thinking=False rendering (``/nothink``, reply opened with ``<think></think>``),
    for a new message and for Regenerate; with the switch on it is the default rendering."""
    client, _ = app46
    client.predict(api_name="/clear")
    chatbot, _, stats = _chat(client, "Hi", thinking_=False).result()
    assert prompts and prompts[-1].endswith("<|user|>\nHi/nothink<|assistant|>\n<think></think>\n")
    assert "0 thinking" in stats or "thinking" not in stats
    assert not any((m.get("metadata") or {}).get("title") for m in chatbot)  # no Thinking block
    client.submit(api_name="/regenerate", temperature_=0.0, max_new_=4, thinking_=False).result()
    assert prompts[-1].endswith("Hi/nothink<|assistant|>\n<think></think>\n")
    client.predict(api_name="/clear")
    _chat(client, "Hi").result()
    assert prompts[-1].endswith("<|user|>\nHi<|assistant|>\n")


def test_thinking_off_is_refused_for_a_model_without_a_switch(app):
    """GLM-4.1V (here the embedded tiny model) always thinks: an API call with the switch
    off gets one line saying what to change, and the chat stays as it was."""
    client, _, _ = app
    client.predict(api_name="/clear")
    msg = _error_of(_chat(client, "Hi", thinking_=False))
    assert "no thinking switch" in msg and "always thinks" in msg and "thinking budget" in msg
    assert "Traceback" not in msg
    chatbot, _, _ = _chat(client, "Hi").result()
    assert _texts(chatbot, "user") == ["Hi"]


def test_cli_sampling_defaults_come_from_the_checkpoint_and_flags_win(glm46v_path, monkeypatch, capsys):
    """`studio chat` starts from the checkpoint's generation_config (as the Chat tab does),
    and a flag given on the command line wins over it (--max-new-tokens included)."""
    from studio.cli import main
    from studio.engine.infer import chat as engine
    from studio.engine.infer import reasoning

    seen = []

    def fake_stream(model, processor, history, gen, **kw):
        seen.append((gen, kw.get("thinking")))
        yield engine.Done(text="ok", parsed=reasoning.parse("ok"))

    monkeypatch.setattr(engine, "stream", fake_stream)
    base = ["chat", "--model", str(glm46v_path), "--device", "cpu", "Hi"]
    assert main(base) == 0
    assert main(base[:-1] + ["--max-new-tokens", "7", "--temperature", "0", "--no-thinking", "Hi"]) == 0
    (first, on), (second, off) = seen
    assert (first.temperature, first.top_p, first.top_k, first.repetition_penalty, first.max_new_tokens) == \
        (0.8, 0.6, 2, 1.1, 256)
    assert (second.max_new_tokens, second.temperature, second.top_p) == (7, 0.0, 0.6)
    assert (on, off) == (None, False)


# ------------------------------------------------------------------ CLI


def test_cli_chat_streams_an_answer_about_the_sample_photo(tiny_path, capsys):
    from studio.cli import main

    rc = main(["chat", "--model", str(tiny_path), "--device", "cpu", "--image", str(PHOTO),
               "--temperature", "0", "--max-new-tokens", "8", "What is in this picture?"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.strip()
    assert "\033[" not in out  # not a TTY: no colour codes
    assert "8 tokens" in err.splitlines()[-1] or "tokens ·" in err.splitlines()[-1]


def test_cli_boxes_out_says_when_the_answer_has_no_box(tiny_path, tmp_path, capsys):
    from studio.cli import main

    png = tmp_path / "boxes.png"
    rc = main(["chat", "--model", str(tiny_path), "--device", "cpu", "--image", str(PHOTO),
               "--temperature", "0", "--max-new-tokens", "4", "--boxes-out", str(png), "Where is the cat?"])
    _, err = capsys.readouterr()
    assert rc == 0, err
    assert f"the answer has no box: {png} not written" in err
    assert not png.exists()


@pytest.mark.parametrize("argv,expected", [
    (["chat", "--model", "./no/such/folder", "hi"], "error: Model folder './no/such/folder' does not exist"),
    (["chat", "--load-in-4bit", "--device", "cpu", "hi"], "error: --load-in-4bit needs an NVIDIA GPU"),
    (["chat", "--image", "missing.jpg", "hi"], "error: "),
    (["ui", "--model", "./no/such/folder"], "error: Model folder './no/such/folder' does not exist"),
])
def test_cli_errors_are_one_line_exit_2(argv, expected, capsys):
    from studio.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), err
    assert "Traceback" not in err


def test_cli_printer_dims_and_prefixes_thinking():
    import io

    from studio.commands.chat import DIM, RESET, THINK_PREFIX, Printer

    buf = io.StringIO()
    p = Printer(buf, color=True)
    p.thinking("first line\nsec")
    p.thinking("ond")
    p.answer("The answer.")
    p.finish()
    assert buf.getvalue() == f"{DIM}{THINK_PREFIX}first line\n{THINK_PREFIX}second\n{RESET}The answer.\n"
    buf = io.StringIO()
    p = Printer(buf, color=False)
    p.thinking("a")
    p.answer("b")
    p.finish()
    assert buf.getvalue() == f"{THINK_PREFIX}a\nb\n"


def _tiny_adapter(tiny_path, out: Path) -> Path:
    """Save a random LoRA adapter (language-model q/v projections) for the tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    model, _ = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                     init_lora_weights=False)
    torch.manual_seed(1)
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(out)
    return out


def test_adapter_from_try_it_is_offered_and_used(app, tiny_path, tmp_path):
    client, ctx, _ = app
    client.predict(api_name="/clear")
    adapter = _tiny_adapter(tiny_path, tmp_path / "adapter")
    ctx.extra["chat_adapter"] = str(adapter)
    try:
        base, _, _ = _chat(client, "Hello", max_new_=5).result()
        client.predict(api_name="/clear")
        tuned, _, _ = _chat(client, "Hello", max_new_=5, adapter_=str(adapter)).result()
        assert _texts(tuned, "assistant") != _texts(base, "assistant")  # the LoRA changes greedy output
        # the adapter rides on the one shared base copy (no second load) and is off afterwards
        assert [s.adapter for s in ctx.registry.loaded()] == [None]
        client.predict(api_name="/clear")
        again, _, _ = _chat(client, "Hello", max_new_=5).result()
        def no_stats(msgs):
            return [m.split("<sub>")[0] for m in _texts(msgs, "assistant")]
        assert no_stats(again) == no_stats(base)
        msg = _error_of(_chat(client, "Hello", adapter_=str(tmp_path / "nope")))
        assert "has no adapter_config.json" in msg
    finally:
        ctx.extra.pop("chat_adapter", None)
        ctx.registry.unload()  # drop the weights the adapter was injected into


@pytest.mark.slow
def test_cli_ctrl_c_stops_cleanly(tiny_path):
    """SIGINT during generation: partial output kept, '[stopped]', exit 130, no traceback."""
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo), PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "studio", "chat", "--model", str(tiny_path), "--device", "cpu",
                          "--max-new-tokens", "4000", "--temperature", "1.0", "--top-k", "0", "--seed", "3",
                          "Tell me a long story."],
                         cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.read(1)  # blocks until the answer starts streaming
    assert first
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert time.perf_counter() - t0 < 5
    assert p.returncode == 130, err.decode()
    assert "[stopped]" in err.decode() and "Traceback" not in err.decode()


def test_refusals_log_one_line_not_a_traceback(app, tmp_path, capfd, caplog):
    """An expected refusal (here: a folder that is no adapter) reaches the user as a toast
    and the server log as one INFO line, not gradio's full traceback."""
    import logging

    client, _, _ = app
    client.predict(api_name="/clear")
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="studio.ui.i18n"):
        msg = _error_of(_chat(client, "Hello", adapter_=str(tmp_path / "nope")))
    assert "has no adapter_config.json" in msg
    assert "Traceback" not in capfd.readouterr().err
    assert any("refused:" in r.getMessage() and "adapter_config.json" in r.getMessage() for r in caplog.records)


def test_boxes_are_drawn_on_an_enlarged_small_image():
    """A 112-px workshop scene is enlarged ×4 (nearest pixels) before its box is drawn, and the
    box lands on the object's cell."""
    from PIL import Image

    from studio.engine.infer.reasoning import Box
    from studio.ui.render import BOX_MIN_SIDE, draw_boxes

    img = Image.new("RGB", (112, 112), "white")
    out = draw_boxes(img, [Box(286, 286, 464, 464)], min_side=BOX_MIN_SIDE)
    assert out.size == (448, 448) and img.size == (112, 112)
    px = out.load()
    assert px[128, 200] != (255, 255, 255) and px[200, 200] == (255, 255, 255)  # left edge drawn, inside empty
    assert draw_boxes(img, [Box(0, 0, 10, 10)]).size == (112, 112)


def test_examples_follow_the_loaded_model():
    """Issue 28.5: the workshop model was trained on workshop scenes only (a photo gave
    "*, yellow shapesquare…"), so its examples are scenes of every family; other models get
    the photo, video and PDF."""
    from studio.ui.tabs.chat import SAMPLE_DATA, _examples

    ws = _examples(True)
    files = [Path(ex[0]["files"][0]) for ex in ws]
    assert len(ws) == 6 and all(f.parent == SAMPLE_DATA / "workshop" / "images" and f.is_file() for f in files)
    assert {f.name.split("-")[0] for f in files} == {"grounding", "shapes", "position", "size", "arithmetic"}
    # issue 25: the first example asks for a box, on a scene held out from training and RL
    assert files[0].name.startswith("grounding-l1-s7000-") and ws[0][0]["text"].startswith("Where is")
    assert all(ex[0]["text"] and "<image>" not in ex[0]["text"] for ex in ws)
    other = [Path(ex[0]["files"][0]).parent.name for ex in _examples(False)]
    assert other == ["photos", "video", "docs"]


def _chat_handlers(tiny_path) -> dict:
    """api_name → the Chat tab's handler functions, built on the tiny model (no server)."""
    import gradio as gr

    from studio.config import ModelSpec
    from studio.ui.context import AppContext
    from studio.ui.tabs import chat as tab

    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    with gr.Blocks() as demo:
        tab.build(ctx)
    out = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    out["_check"] = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "check")
    out["_ctx"] = ctx
    return out


class _Slow:
    """Logits processor that sleeps per token, so a reply streams for seconds."""

    def __call__(self, input_ids, scores):
        time.sleep(0.02)
        return scores


def test_clear_during_streaming_yields_nothing_of_the_old_chat(tiny_path, monkeypatch):
    """A Clear while a reply streams: every update the reply makes after the Clear was pressed
    could reach the page after the Clear's empty chat (two messages, any order) and redraw the
    old conversation. So the stream must make none: the generator is paused (as gradio pauses
    it between updates), Clear is pressed, then the rest of the stream is drained."""
    import threading
    from types import SimpleNamespace

    from studio.ui import components

    h = _chat_handlers(tiny_path)
    h["_ctx"].extra["chat_logits_processors"] = lambda: [_Slow()]
    req = SimpleNamespace(session_hash="race-1")
    settings = ["", 1.0, 0.9, 0, 1.0, 300, 0, 300, 1.0, 8, "none (base model)", True]
    msg = {"text": "Tell me a very long story.", "files": []}
    st = h["_check"](msg, None, *settings, request=req)
    stream = h["chat"](msg, st, *settings, request=req)
    first = next(stream)
    assert any("very long story" in str(m) for m in first[0])
    waiting = threading.Event()
    real_wait = components.wait_finished

    def wait_finished(ev, timeout=3.0):
        waiting.set()  # Clear has done its part and now waits for the stream
        return real_wait(ev, timeout)

    monkeypatch.setattr(components, "wait_finished", wait_finished)
    cleared = []
    t = threading.Thread(target=lambda: cleared.append(h["clear"](request=req)))
    t.start()
    assert waiting.wait(10)
    later = list(stream)  # what the reply would still send after the Clear
    t.join(10)
    assert later == []
    chatbot, _, state, stats, _ = cleared[0]
    assert chatbot == [] and state.rounds == [] and stats == ""


def test_clear_while_queued_does_not_bring_the_old_chat_back(tiny_path):
    """A message accepted (check step), then Clear before it starts: when it starts it
    yields nothing — not even the "stopped while queued" note with the old state."""
    from types import SimpleNamespace

    from studio.ui.tabs.chat_state import ChatState, Round
    from studio.engine.infer import chat as engine

    h = _chat_handlers(tiny_path)
    req = SimpleNamespace(session_hash="race-2")
    settings = ["", 0.0, 0.9, 0, 1.0, 4, 0, 4, 1.0, 8, "none (base model)", True]
    old = ChatState(rounds=[Round(user=engine.ChatTurn("user", "old question"), user_msgs=[{"role": "user",
                                                                                               "content": "old"}])])
    msg = {"text": "new question", "files": []}
    st = h["_check"](msg, old, *settings, request=req)
    h["clear"](request=req)
    assert list(h["chat"](msg, st, *settings, request=req)) == []
    # the next message after the Clear streams as usual
    st = h["_check"](msg, ChatState(), *settings, request=req)
    updates = list(h["chat"](msg, st, *settings, request=req))
    assert updates and "new question" in str(updates[-1][0]) and "old" not in str(updates[-1][0])


def test_the_estimate_never_writes_the_chat_state(app):
    """The visual-token estimate runs on every change of the box — Clear's own change too — and
    could finish after Clear: when it returned the session state it wrote its old copy of the
    conversation back, and the next message brought the cleared turns back (issue 28 walkthrough).
    It may read the state; its only output is the estimate line."""
    _, _, demo = app
    cfg = demo.get_config_file()
    (dep,) = [d for d in cfg["dependencies"] if d.get("api_name") == "estimate"]
    state_ids = {c["id"] for c in cfg["components"] if c.get("type") == "state"}
    assert dep["outputs"] and not state_ids & set(dep["outputs"]), dep["outputs"]
    clear = [d for d in cfg["dependencies"] if d.get("api_name") == "clear"]
    assert clear and state_ids & set(clear[0]["outputs"])  # Clear is what resets it
