"""Compare engine: prompts, sequential streaming, adapters on shared weights, votes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.config import EMBEDDED, GenerationConfig
from studio.engine.infer import compare as cmp
from studio.engine.infer.chat import ChatTurn, generate_text
from studio.engine.infer.compare import (
    CompareDone,
    Comparer,
    CompareSettings,
    SideEvent,
    SideSpec,
    SideStart,
    VoteLog,
    build_base_inputs,
    render_base_prompt,
    render_chat_prompt,
)
from studio.errors import InputError, ModelLoadError

GREEDY = GenerationConfig(max_new_tokens=10, temperature=0.0, seed=0)


def _image(tmp_path: Path, name="img.png", colour=(200, 30, 30)) -> Path:
    from PIL import Image

    p = tmp_path / name
    Image.new("RGB", (64, 48), colour).save(p)
    return p


def _media(paths):
    from studio.engine.infer.media import prepare_turn_media

    return prepare_turn_media([str(p) for p in paths])


# ------------------------------------------------------------------ prompt rendering

def test_base_prompt_exact_strings(tmp_path):
    assert render_base_prompt("What is 2+2?") == "[gMASK]<sop>Question: What is 2+2?\nAnswer:"
    media = _media([_image(tmp_path, "a.png"), _image(tmp_path, "b.png", (0, 0, 255))])
    out = render_base_prompt(" Which is red? ", media, system="Answer briefly.",
                             few_shot=[{"question": "1+1?", "answer": "2"}])
    assert out == ("[gMASK]<sop>Answer briefly.\n\nQuestion: 1+1?\nAnswer: 2\n\n"
                   "<|begin_of_image|><|image|><|end_of_image|><|begin_of_image|><|image|><|end_of_image|>"
                   "Question: Which is red?\nAnswer:")
    assert "<|user|>" not in out and "<|assistant|>" not in out


def test_chat_prompt_exact_strings(tiny, tmp_path):
    _, processor = tiny
    assert render_chat_prompt(processor, "What is 2+2?") == "[gMASK]<sop><|user|>\nWhat is 2+2?<|assistant|>\n"
    media = _media([_image(tmp_path)])
    assert render_chat_prompt(processor, "Q", media, system="S") == (
        "[gMASK]<sop><|system|>\nS<|user|>\n<|begin_of_image|><|image|><|end_of_image|>Q<|assistant|>\n")


def test_base_inputs_expand_images_without_roles(tiny, tmp_path):
    from studio.engine.infer.media import estimate_visual_tokens

    _, processor = tiny
    media = _media([_image(tmp_path)])
    inputs = build_base_inputs(processor, "Which colour?", media)
    ids = inputs["input_ids"][0].tolist()
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<|image|>")
    assert ids.count(image_id) == estimate_visual_tokens(media, processor) > 0
    assert tok.convert_tokens_to_ids("<|user|>") not in ids
    assert "pixel_values" in inputs and "mm_token_type_ids" in inputs
    assert tok.decode(ids[:2]) == "[gMASK]<sop>"


def test_cut_at_stop_and_default_mode():
    assert cmp.cut_at_stop(" 4\nQuestion: 5?") == " 4"
    assert cmp.cut_at_stop(" 4\nQue", streaming=True) == " 4"
    assert cmp.cut_at_stop(" 4\nQue") == " 4\nQue"
    assert cmp.default_mode("zai-org/GLM-4.1V-9B-Base") == "base"
    assert cmp.default_mode("toy-base") == "base"
    assert cmp.default_mode("zai-org/GLM-4.1V-9B-Thinking") == "chat"
    assert cmp.default_mode(EMBEDDED) == "chat"


def test_default_pair_without_toy_models(monkeypatch, tmp_path):
    from studio.engine.infer import models

    monkeypatch.setattr(models, "SHIPPED", {"toy-base": tmp_path / "x", "toy-thinking": tmp_path / "y"})
    a, b, note = cmp.default_pair()
    assert (a.model, a.mode, b.model, b.mode) == (EMBEDDED, "base", EMBEDDED, "chat")
    assert "random weights" in note


def test_side_spec_validation():
    with pytest.raises(InputError, match="mode"):
        SideSpec(mode="thinking").validate()
    with pytest.raises(InputError, match="few_shot"):
        CompareSettings(few_shot=[{"question": "q"}]).validate()


# ------------------------------------------------------------------ running

def test_sequential_stream_matches_each_side_alone(tiny_path, tiny):
    model, processor = tiny
    a = SideSpec(str(tiny_path), mode="base")
    b = SideSpec(str(tiny_path), mode="chat")
    events = list(Comparer().stream(a, b, "How many shapes are there?", settings=CompareSettings(gen=GREEDY)))
    starts = [e for e in events if isinstance(e, SideStart)]
    assert [s.side for s in starts] == ["A", "B"] and starts[0].mode == "base"
    # A's events all come before B's (sequential), and each side ends with one Done.
    sides = [e.side for e in events if isinstance(e, SideEvent)]
    assert sides == sorted(sides)
    result = events[-1].result
    assert isinstance(events[-1], CompareDone) and result.complete
    assert any("same model" in n for n in result.notes)
    # B alone: the chat engine on the same model.
    alone_b = generate_text(model, processor, [ChatTurn("user", "How many shapes are there?")], GREEDY)
    assert result.sides["B"].text == alone_b.text
    # A alone: plain greedy generate on the completion prompt, cut at the stop string.
    inputs = build_base_inputs(processor, "How many shapes are there?")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False,
                             pad_token_id=processor.tokenizer.pad_token_id)
    text = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
    from studio.engine.infer.reasoning import strip_control_tokens

    assert result.sides["A"].text == cmp.cut_at_stop(strip_control_tokens(text)).strip()
    s = result.sides["A"].stats
    assert s.new_tokens >= 1 and s.ttft_s > 0 and s.thinking_tokens == 0
    assert result.sides["A"].prompt_text.startswith("[gMASK]<sop>Question:")


def test_same_seed_both_sides_and_recorded(tiny_path):
    a = b = SideSpec(str(tiny_path), mode="chat")
    gen = GenerationConfig(max_new_tokens=8, temperature=1.0, top_k=0, top_p=1.0, seed=None)
    result = Comparer().run(a, b, "Describe the image.", settings=CompareSettings(gen=gen))
    seed = result.settings["gen"]["seed"]
    assert isinstance(seed, int)
    assert result.sides["A"].text == result.sides["B"].text  # same model, same seed → same sample


def test_base_side_stops_at_next_question(tiny_path):
    """The stop logits processor ends a completion at "\\nQuestion:" (forced here)."""
    from transformers import LogitsProcessor

    comparer = Comparer()
    loaded, _, _ = comparer.load(SideSpec(str(tiny_path)), SideSpec(str(tiny_path)))
    tok = loaded["A"].processor.tokenizer
    script = tok(" 4\nQuestion: 5", add_special_tokens=False).input_ids

    class Script(LogitsProcessor):
        def __call__(self, input_ids, scores):
            n = input_ids.shape[1] - self.start
            if n < len(script):
                scores = torch.full_like(scores, -1e9)
                scores[:, script[n]] = 0
            return scores

    sp = Script()
    orig = cmp.chat.stream

    def patched(*args, **kw):
        sp.start = kw["inputs"]["input_ids"].shape[1]
        kw["logits_processor"] = [sp] + list(kw.get("logits_processor") or [])
        return orig(*args, **kw)

    cmp.chat.stream = patched
    try:
        events = list(comparer._side_events(loaded["A"], SideSpec(str(tiny_path), mode="base"), "2+2?", None,
                                            CompareSettings(gen=GenerationConfig(max_new_tokens=30, temperature=0)),
                                            None))
    finally:
        cmp.chat.stream = orig
    done = events[-1]
    assert done.text == "4"
    shown = "".join(e.text for e in events if isinstance(e, cmp.chat.AnswerDelta))
    assert "Question" not in shown
    assert done.stats.new_tokens < 30  # EOS was forced right after the stop string


def test_empty_question_refused(tiny_path):
    with pytest.raises(InputError, match="Type a question"):
        Comparer().run(SideSpec(str(tiny_path)), SideSpec(str(tiny_path)), "  ")


def test_plan_on_cpu_shares_weights(tiny_path):
    plan = Comparer().plan(SideSpec(str(tiny_path)), SideSpec(str(tiny_path), adapter="x"))
    assert plan.mode == "both_resident" and plan.sides["B"].shared_with == "A"


# ------------------------------------------------------------------ adapters

def _lora_on(model, folder: Path, seed=0) -> Path:
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=r".*language_model.*\.(q_proj|v_proj|o_proj|down_proj)")
    peft = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    assert not any(".visual." in n for n, _ in peft.named_parameters() if "lora_" in n)
    peft.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapter_dir(tiny_path, tmp_path_factory):
    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    model, _ = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    return _lora_on(model, tmp_path_factory.mktemp("lora") / "adapter")


def test_adapter_on_off_same_weights(tiny_path, tiny, adapter_dir):
    from studio.engine.infer.models import ModelRegistry

    model, processor = tiny
    registry = ModelRegistry()
    a = SideSpec(str(tiny_path), mode="chat")
    b = SideSpec(str(tiny_path), adapter=str(adapter_dir), mode="chat")
    q = "What color is the circle?"
    result = Comparer(registry).run(a, b, q, settings=CompareSettings(gen=GREEDY))
    assert len(registry.loaded()) == 1  # one copy of the weights serves both sides
    plain = generate_text(model, processor, [ChatTurn("user", q)], GREEDY).text
    assert result.sides["A"].text == plain
    assert result.sides["B"].text != plain
    assert result.sides["B"].model_spec["adapter"] == str(adapter_dir)
    # After the comparison the shared model is plain again (adapter layers off).
    shared, _ = registry.get(registry.loaded()[0])
    assert generate_text(shared, processor, [ChatTurn("user", q)], GREEDY).text == plain
    # Adapter first, then base (B/A swapped): the base side is still the plain model.
    swapped = Comparer(registry).run(b, a, q, settings=CompareSettings(gen=GREEDY))
    assert swapped.sides["B"].text == plain and swapped.sides["A"].text == result.sides["B"].text


def test_adapter_for_other_base_is_refused(tiny, tmp_path, monkeypatch):
    from studio.engine.infer import tiny as tiny_mod

    model, processor = tiny
    monkeypatch.setattr(tiny_mod, "TEXT_CONFIG", dict(
        tiny_mod.TEXT_CONFIG, hidden_size=64, intermediate_size=128,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]}))
    monkeypatch.setattr(tiny_mod, "VISION_CONFIG", dict(tiny_mod.VISION_CONFIG, out_hidden_size=64))
    other = tiny_mod.build_model(processor.tokenizer)
    folder = _lora_on(other, tmp_path / "other")
    with pytest.raises(ModelLoadError, match="trained for another base.*input features"):
        cmp.check_adapter(model, str(folder))
    with pytest.raises(ModelLoadError, match="no adapter_config.json"):
        cmp.check_adapter(model, str(tmp_path))


# ------------------------------------------------------------------ votes

def test_votes_rows_complete_and_loadable(tiny_path, tmp_path):
    img = _image(tmp_path)
    a = SideSpec(str(tiny_path), mode="base")
    b = SideSpec(str(tiny_path), mode="chat")
    log = VoteLog(cmp.votes_folder(tmp_path / "runs", "sess-1"))
    with pytest.raises(InputError, match="no finished comparison"):
        log.record(None, "A")
    assert not log.path.exists()
    result = Comparer().run(a, b, "What color is it?", media_paths=[str(img)],
                            settings=CompareSettings(gen=GREEDY, system="Be brief."))
    row = log.record(result, "B")
    with pytest.raises(InputError, match="already has a vote"):
        log.record(result, "A")
    with pytest.raises(InputError, match="Unknown vote"):
        log.record(result, "C")
    assert log.path == tmp_path / "runs" / "compare-votes" / "sess-1" / "votes.jsonl"
    rows = log.rows()
    assert rows == [json.loads(json.dumps(row))]
    assert set(row) == {"id", "timestamp", "prompt", "media", "system", "outputs", "models", "modes",
                        "thinking", "settings", "vote", "stats"}
    assert row["prompt"] == "What color is it?" and row["system"] == "Be brief." and row["vote"] == "B"
    assert row["modes"] == {"A": "base", "B": "chat"} and row["thinking"] == {"A": False, "B": True}  # a base prompt never thinks
    assert row["outputs"] == {"A": result.sides["A"].text, "B": result.sides["B"].text}
    assert row["models"]["A"]["name_or_path"] == str(tiny_path)
    assert row["settings"]["gen"]["seed"] == 0 and row["settings"]["gen"]["temperature"] == 0.0
    assert {"ttft_s", "tokens_per_s", "thinking_tokens", "answer_tokens", "forced_answer"} <= set(row["stats"]["A"])
    (m,) = row["media"]
    assert not Path(m).is_absolute()
    assert (log.folder / m).read_bytes() == img.read_bytes()
    # a tie on a second comparison: appended, same file
    result2 = Comparer().run(a, b, "And now?", settings=CompareSettings(gen=GREEDY))
    log.record(result2, "tie")
    assert [r["vote"] for r in log.rows()] == ["B", "tie"]
    assert log.rows()[1]["media"] == []


def test_vote_file_is_read_by_sft_loader(tiny_path, tmp_path):
    data = pytest.importorskip("studio.engine.train.data")
    img = _image(tmp_path)
    log = VoteLog(tmp_path / "votes")
    result = Comparer().run(SideSpec(str(tiny_path), mode="base"), SideSpec(str(tiny_path)), "Colour?",
                            media_paths=[str(img)], settings=CompareSettings(gen=GREEDY))
    log.record(result, "A")
    rows = data.load_rows(log.path)
    assert len(rows) == 1
    (row,) = rows
    assert row.messages[-1]["role"] == "assistant"
    assert row.messages[-1]["content"] == result.sides["A"].text
    assert [Path(p).read_bytes() for p in row.images] == [img.read_bytes()]


def test_pdf_pages_saved_as_images(tiny_path, tmp_path):
    pdf = Path(__file__).resolve().parents[1] / "sample_data" / "docs" / "sample.pdf"
    if not pdf.is_file():
        pytest.skip("sample PDF not shipped")
    log = VoteLog(tmp_path / "votes")
    result = Comparer().run(SideSpec(str(tiny_path), mode="base"), SideSpec(str(tiny_path)), "Title?",
                            media_paths=[str(pdf)],
                            settings=CompareSettings(gen=GenerationConfig(max_new_tokens=3, temperature=0)))
    row = log.record(result, "A")
    assert row["media"] and all(m.endswith(".png") for m in row["media"])
    assert len(row["media"]) == len(result.media.images)


def test_take_turns_plan_moves_idle_side(tiny_path, tmp_path, monkeypatch):
    """A simulated card that holds one side at a time: each side is moved onto the device
    just before it generates, the other one off (device moves recorded, CPU underneath)."""
    from studio.engine.infer.memplan import DeviceInfo
    from studio.engine.infer.tiny import build_tiny

    other = build_tiny(tmp_path / "other", seed=1)
    a, b = SideSpec(str(tiny_path), mode="chat"), SideSpec(str(other), mode="chat")
    both = Comparer(device_info=DeviceInfo.simulated(80)).plan(a, b)
    one = both.peak_gb - both.sides["A"].weights_gb / 2  # room for one copy + margin, not two
    info = DeviceInfo("cuda", one / 0.95, one, 64.0, True, "sim")
    comparer = Comparer(device_info=info)
    assert comparer.plan(a, b).mode == "take_turns"
    moves = []
    monkeypatch.setattr(Comparer, "_to", staticmethod(lambda model, dev: moves.append((model.studio_path, dev))))
    result = comparer.run(a, b, "Hi", settings=CompareSettings(gen=GREEDY, device="cpu"))
    assert result.plan.mode == "take_turns"
    # loading: each copy parked on the CPU; A's turn: B off, A on; B's turn: A off, B on
    assert moves == [(str(tiny_path), "cpu"), (str(other), "cpu"),
                     (str(other), "cpu"), (str(tiny_path), "cuda"),
                     (str(tiny_path), "cpu"), (str(other), "cuda")]


def test_a_runs_adapter_is_labelled_by_its_run_folder():
    """`runs/<run>/adapter` read "toy-thinking + adapter adapter" in the Compare header."""
    from studio.engine.infer.compare.settings import SideSpec

    s = SideSpec(model="toy-thinking", adapter="runs/20261203-193039-rl-workshop-rl/adapter")
    assert s.label() == "toy-thinking + adapter 20261203-193039-rl-workshop-rl"
    assert SideSpec(model="toy-thinking", adapter="runs/r/checkpoint-40").label().endswith("adapter checkpoint-40")


def test_follow_up_each_side_continues_its_own_conversation(tiny_path, prompts):
    """Issue 28.2: a follow-up asks each side with *its own* earlier turns: B's second prompt
    holds B's first answer (its thinking stripped, as the chat template's history rule
    says) and never A's; a base side reads its history as Question/Answer pairs."""
    from studio.engine.infer.chat import ChatTurn

    a, b = SideSpec(str(tiny_path), mode="base"), SideSpec(str(tiny_path))
    history = {"A": [ChatTurn("user", "How many red circles?"), ChatTurn("assistant", "ANSWER-OF-A 2")],
               "B": [ChatTurn("user", "How many red circles?"),
                     ChatTurn("assistant", "<think>SECRET-THOUGHT of B</think><answer>ANSWER-OF-B 3</answer>")]}
    prompts.clear()
    result = Comparer().run(a, b, "And blue ones?", settings=CompareSettings(gen=GREEDY), history=history)
    chat_prompt = prompts[-1]  # the last build_inputs call: side B (chat); A's base prompt is built apart
    assert "ANSWER-OF-B 3" in chat_prompt and "ANSWER-OF-A" not in chat_prompt
    assert "SECRET-THOUGHT" not in chat_prompt and chat_prompt.count("How many red circles?") == 1
    base_prompt = result.sides["A"].prompt_text
    assert base_prompt.endswith("Question: How many red circles?\nAnswer: ANSWER-OF-A 2\n\nQuestion: And blue ones?\nAnswer:")
    assert "ANSWER-OF-B" not in base_prompt
    assert "ANSWER-OF-B 3" in result.sides["B"].prompt_text and "ANSWER-OF-A" not in result.sides["B"].prompt_text
    assert result.turn == 2 and result.history["B"][1] == {"role": "assistant", "content": "<answer>ANSWER-OF-B 3</answer>"}
