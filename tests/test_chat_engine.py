"""The chat engine (studio/engine/infer/chat.py) on the tiny model: events, stop, budget, tags."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from studio.config import GenerationConfig
from studio.engine.infer import chat, reasoning
from studio.errors import InputError

TAGGED = ("<think>I see a red square.</think><answer>It is here: "
          "<|begin_of_box|>[100,200,300,400]<|end_of_box|></answer>")


class ForceSequence:
    """LogitsProcessor: emit exactly ``ids`` (then ``end_id`` forever)."""

    def __init__(self, ids: list[int], end_id: int):
        self.ids, self.end_id, self.start = list(ids), end_id, None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        target = self.ids[step] if step < len(self.ids) else self.end_id
        out = torch.full_like(scores, float("-inf"))
        out[:, target] = 0.0
        return out


class ForceThinking:
    """LogitsProcessor: ``<think>`` first; then never ``</think>`` nor an end token.

    Once ``</think>`` is in the input (the engine's forced answer), it does nothing.
    A random model never thinks on its own, so this is how the budget gets exercised.
    """

    def __init__(self, tok, eos_ids):
        self.think = tok.convert_tokens_to_ids("<think>")
        self.end_think = tok.convert_tokens_to_ids("</think>")
        self.eos = list(eos_ids)

    def __call__(self, input_ids, scores):
        ids = input_ids[0].tolist()
        if self.end_think in ids:
            return scores
        scores = scores.clone()
        if self.think not in ids:
            keep = scores[:, self.think].clone()
            scores[:] = float("-inf")
            scores[:, self.think] = keep
            return scores
        scores[:, [self.end_think] + self.eos] = float("-inf")
        return scores


class BanEnd:
    """LogitsProcessor: never end (so a generation runs until stopped or capped)."""

    def __init__(self, eos_ids):
        self.eos = list(eos_ids)

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.eos] = float("-inf")
        return scores


def _eos(model):
    eos = model.generation_config.eos_token_id
    return eos if isinstance(eos, list) else [eos]


def _user(text="Describe the image.", media=None):
    return [chat.ChatTurn("user", text, media)]


GREEDY = dict(temperature=0.0)


def test_stream_yields_deltas_then_one_done(tiny):
    model, processor = tiny
    gen = GenerationConfig(max_new_tokens=24, **GREEDY)
    events = list(chat.stream(model, processor, _user("Hi"), gen))
    dones = [e for e in events if isinstance(e, chat.Done)]
    assert len(dones) == 1 and events[-1] is dones[0]
    done = dones[0]
    answer = "".join(e.text for e in events if isinstance(e, chat.AnswerDelta))
    assert answer == done.parsed.answer
    assert not any(isinstance(e, (chat.ThinkingDelta, chat.ForcedAnswer)) for e in events)
    s = done.stats
    expected_prompt = chat.build_inputs(processor, _user("Hi"))["input_ids"].shape[1]
    assert s.prompt_tokens == expected_prompt
    # exactly what plain greedy generate produces for this prompt (EOS or the 24-token cap)
    raw = model.generate(**chat.build_inputs(processor, _user("Hi")), max_new_tokens=24, do_sample=False,
                         pad_token_id=processor.tokenizer.pad_token_id)
    assert s.new_tokens == raw.shape[1] - expected_prompt
    assert s.ttft_s > 0 and s.total_s >= s.ttft_s
    assert s.answer_tokens == s.new_tokens and s.thinking_tokens == 0
    assert not s.stopped and not s.forced_answer
    # greedy is deterministic: same output again
    again = chat.generate_text(model, processor, _user("Hi"), gen)
    assert again.text == done.text


def test_every_decode_path_keeps_think_answer_box_tags(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    ids = tok(TAGGED, add_special_tokens=False).input_ids
    end = tok.convert_tokens_to_ids("<|user|>")
    proc = ForceSequence(ids, end)
    gen = GenerationConfig(max_new_tokens=len(ids) + 5, **GREEDY)
    events = list(chat.stream(model, processor, _user(), gen, logits_processor=[proc]))
    done = events[-1]
    assert isinstance(done, chat.Done)
    # stream path: the full text keeps all six tags, control tokens removed
    assert done.text == TAGGED
    for tag in reasoning.REASONING_TAGS:
        assert tag in done.text
    p = done.parsed
    assert p.thinking == "I see a red square."
    assert p.answer == "It is here: [100,200,300,400]"
    assert p.boxes == [reasoning.Box(100, 200, 300, 400)]
    thinking = "".join(e.text for e in events if isinstance(e, chat.ThinkingDelta))
    answer = "".join(e.text for e in events if isinstance(e, chat.AnswerDelta))
    assert thinking == p.thinking and answer == p.answer
    for tag in reasoning.REASONING_TAGS + ("<|user|>",):
        assert tag not in thinking + answer
    # thinking counts the tokens between the tags, answer those after </think>
    assert done.stats.thinking_tokens == len(tok("I see a red square.", add_special_tokens=False).input_ids)
    assert done.stats.thinking_tokens + done.stats.answer_tokens + 2 == done.stats.new_tokens
    # </answer> ends generation like the real generation config; else the forced end token
    assert done.stats.new_tokens == len(ids) + (0 if ids[-1] in _eos(model) else 1)
    assert not done.stats.truncated
    # non-streaming helper
    proc2 = ForceSequence(ids, end)
    assert chat.generate_text(model, processor, _user(), gen, logits_processor=[proc2]).text == TAGGED
    # incremental decoder, one token at a time == one-shot decode
    dec = chat.IncrementalDecoder(tok)
    for i in ids:
        dec.push([i])
    assert dec.text == tok.decode(ids, skip_special_tokens=False) == TAGGED
    # plain tokenizer decode with special tokens skipped (what TRL does) keeps them too
    assert tok.batch_decode([ids], skip_special_tokens=True)[0] == TAGGED


def test_stop_halts_generation_within_a_second(tiny):
    model, processor = tiny
    stop = threading.Event()
    gen = GenerationConfig(max_new_tokens=4000, **GREEDY)
    it = chat.stream(model, processor, _user(), gen, stop=stop, logits_processor=[BanEnd(_eos(model))])
    first = next(it)
    assert isinstance(first, (chat.AnswerDelta, chat.ThinkingDelta))
    set_at = {}

    def press_stop():
        set_at["t"] = time.perf_counter()
        stop.set()

    timer = threading.Timer(0.3, press_stop)
    timer.start()
    done = [e for e in it if isinstance(e, chat.Done)][0]
    elapsed = time.perf_counter() - set_at["t"]
    assert elapsed < 1.0, f"stop took {elapsed:.2f} s"
    assert done.stats.stopped and not done.stats.truncated
    assert done.stats.new_tokens < 4000
    assert threading.active_count() < 50  # the worker thread was joined, not leaked
    assert not any(t.name == "studio-generate" and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("with_event", [True, False])
def test_abandoned_stream_stops_its_worker(tiny, with_event):
    """Closing the generator (browser tab closed) ends generation: no orphan thread."""
    model, processor = tiny
    stop = threading.Event() if with_event else None
    gen = GenerationConfig(max_new_tokens=4000, **GREEDY)
    it = chat.stream(model, processor, _user(), gen, stop=stop, logits_processor=[BanEnd(_eos(model))])
    next(it)
    t0 = time.perf_counter()
    it.close()
    assert time.perf_counter() - t0 < 1.0
    assert stop is None or stop.is_set()
    assert not any(t.name == "studio-generate" and t.is_alive() for t in threading.enumerate())


def test_thinking_budget_forces_the_answer(tiny):
    model, processor = tiny
    budget = 10
    gen = GenerationConfig(max_new_tokens=200, thinking_budget=budget, answer_budget=6, **GREEDY)
    proc = ForceThinking(processor.tokenizer, _eos(model))
    stop = threading.Event()  # as the UI passes one: a normal phase end must not set it
    events = list(chat.stream(model, processor, _user(), gen, logits_processor=[proc], stop=stop))
    assert not stop.is_set()
    forced = [e for e in events if isinstance(e, chat.ForcedAnswer)]
    assert len(forced) == 1
    done = events[-1]
    assert isinstance(done, chat.Done)
    s = done.stats
    assert s.forced_answer and not s.stopped
    # <think> + `budget` thinking tokens (the tag is not thinking), then the engine
    # appended </think><answer>
    assert forced[0].thinking_tokens == s.thinking_tokens == budget
    assert "</think><answer>" in done.text
    assert done.text.startswith("<think>")
    assert done.parsed.thinking_closed and done.parsed.has_answer_tag
    # forced tokens are not generated; the answer phase stops at EOS or its budget of 6
    assert s.new_tokens == 1 + s.thinking_tokens + s.answer_tokens
    assert s.answer_tokens <= gen.answer_budget
    # the thinking shown before ForcedAnswer equals the parsed thinking
    i = events.index(forced[0])
    shown = "".join(e.text for e in events[:i] if isinstance(e, chat.ThinkingDelta))
    assert done.parsed.thinking.startswith(shown) and shown
    answer = "".join(e.text for e in events if isinstance(e, chat.AnswerDelta))
    assert answer == done.parsed.answer


def test_no_budget_means_no_forced_answer(tiny):
    model, processor = tiny
    gen = GenerationConfig(max_new_tokens=20, thinking_budget=0, **GREEDY)
    proc = ForceThinking(processor.tokenizer, _eos(model))
    done = chat.generate_text(model, processor, _user(), gen, logits_processor=[proc])
    assert not done.stats.forced_answer
    assert done.stats.truncated and done.stats.new_tokens == 20
    assert done.parsed.in_thinking and done.stats.thinking_tokens == 19  # 20 minus <think>
    assert done.stats.cut_by == "max_new_tokens"


@pytest.mark.parametrize("budget", [4, 8, 16])
def test_thinking_budget_counts_the_tokens_after_think(tiny, budget):
    model, processor = tiny
    gen = GenerationConfig(max_new_tokens=100, thinking_budget=budget, answer_budget=3, **GREEDY)
    proc = ForceThinking(processor.tokenizer, _eos(model))
    done = chat.generate_text(model, processor, _user(), gen, logits_processor=[proc])
    assert done.stats.forced_answer and done.stats.thinking_tokens == budget
    # <think> + `budget` tokens were generated before the forced </think><answer>
    assert done.stats.new_tokens == 1 + budget + done.stats.answer_tokens


def test_a_reply_cut_by_the_context_window_says_so(tiny):
    from studio.ui.render import stats_line

    model, processor = tiny
    text_cfg = getattr(model.config, "text_config", model.config)
    prompt_len = chat.build_inputs(processor, _user())["input_ids"].shape[1]
    old = text_cfg.max_position_embeddings
    text_cfg.max_position_embeddings = prompt_len + 6  # room for 6 new tokens, cap asks 50
    try:
        gen = GenerationConfig(max_new_tokens=50, **GREEDY)
        proc = ForceThinking(processor.tokenizer, _eos(model))
        done = chat.generate_text(model, processor, _user(), gen, logits_processor=[proc])
    finally:
        text_cfg.max_position_embeddings = old
    assert done.stats.new_tokens == 6 and done.stats.truncated and done.stats.cut_by == "context"
    line = stats_line(done.stats)
    assert "cut at the context limit" in line and "max new tokens" not in line


def test_stats_line_counts_one_token_in_the_singular():
    """A reply stopped after its first token said "1 tokens"."""
    from studio.ui.render import stats_line

    assert stats_line(chat.Stats(new_tokens=1, stopped=True)).startswith("1 token · ")
    assert stats_line(chat.Stats(new_tokens=2)).startswith("2 tokens · ")


def test_history_strips_earlier_thinking(tiny):
    _, processor = tiny
    history = [
        chat.ChatTurn("user", "Q1"),
        chat.ChatTurn("assistant", "<think>SECRET reasoning</think><answer>A1</answer>"),
        chat.ChatTurn("user", "Q2"),
    ]
    msgs = chat.build_messages(history, "sys")
    assert msgs[0] == {"role": "system", "content": "sys"}
    assert msgs[2] == {"role": "assistant", "content": "<answer>A1</answer>"}
    text = processor.tokenizer.decode(chat.build_inputs(processor, history, "sys")["input_ids"][0])
    assert "SECRET" not in text
    assert text.endswith("<|user|>\nQ2<|assistant|>\n")
    assert "<answer>A1</answer><|user|>" in text


def test_long_prompt_gets_a_clear_input_error(tiny):
    model, processor = tiny
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"tokens; this model reads at most 4,096"):
        next(chat.stream(model, processor, _user("word " * 20_000), GenerationConfig()))  # 100k chars
    assert time.perf_counter() - t0 < 5
    with pytest.raises(InputError, match=r"characters; the limit is"):
        chat.build_inputs(processor, _user("x" * (chat.MAX_PROMPT_CHARS + 1)))
    with pytest.raises(InputError):
        chat.build_inputs(processor, [])
    with pytest.raises(InputError, match="last turn"):
        next(chat.stream(model, processor, [chat.ChatTurn("user", "a"), chat.ChatTurn("assistant", "b")]))


def _png(path, size=(96, 64), colour=(200, 30, 30)):
    from PIL import Image

    Image.new("RGB", size, colour).save(path)
    return str(path)


def _mp4(path, frames=4, size=(64, 48)):
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=4)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), 40 * i, dtype=np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return str(path)


def test_image_and_video_turns_stream(tiny, tmp_path):
    from studio.engine.infer import media

    model, processor = tiny
    image_id = model.config.image_token_id
    gen = GenerationConfig(max_new_tokens=4, **GREEDY)
    img = media.prepare_turn_media([_png(tmp_path / "a.png"), _png(tmp_path / "b.png", (60, 120))])
    inputs = chat.build_inputs(processor, _user("Compare.", img))
    assert int((inputs["input_ids"] == image_id).sum()) == media.estimate_visual_tokens(img, processor)
    assert inputs["image_grid_thw"].shape == (2, 3)
    done = chat.generate_text(model, processor, _user("Compare.", img), gen)
    assert done.stats.prompt_tokens == inputs["input_ids"].shape[1]
    vid = media.prepare_turn_media([_mp4(tmp_path / "c.mp4")])
    done_v = chat.generate_text(model, processor, _user("What happens?", vid), gen)
    assert done_v.stats.prompt_tokens > media.estimate_visual_tokens(vid, processor) > 0
    # two video turns in one conversation work
    history = _user("What happens?", vid) + [chat.ChatTurn("assistant", done_v.text),
                                             chat.ChatTurn("user", "And now?", vid)]
    assert "video_grid_thw" in chat.build_inputs(processor, history)
    assert chat.generate_text(model, processor, history, gen).stats.new_tokens >= 1
    # images then a video in one conversation: a clear error, not a shape crash in the model
    history = _user("Compare.", img) + [chat.ChatTurn("assistant", done.text),
                                        chat.ChatTurn("user", "And this?", vid)]
    with pytest.raises(InputError, match="both images and a video"):
        chat.build_inputs(processor, history)


def test_done_text_equals_one_decode_of_all_generated_ids(tiny):
    """Done.text must not depend on how tokens were batched while streaming (an
    incomplete UTF-8 tail held back by the streaming decoder used to be lost)."""
    import torch

    from studio.config import GenerationConfig
    from studio.engine.infer import reasoning
    from studio.engine.infer.chat import ChatTurn, build_inputs, generate_text

    model, processor = tiny
    history = [ChatTurn("user", "What color is the circle?")]
    gen = GenerationConfig(max_new_tokens=10, temperature=0.0)
    inputs = build_inputs(processor, history)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False,
                             pad_token_id=processor.tokenizer.pad_token_id)
    ids = out[0, inputs["input_ids"].shape[1]:].tolist()
    expected = reasoning.strip_control_tokens(processor.tokenizer.decode(ids, skip_special_tokens=False))
    for _ in range(3):
        assert generate_text(model, processor, history, gen).text == expected
