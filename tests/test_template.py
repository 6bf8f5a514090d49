"""The tiny model's chat template renders byte-identically to GLM-4.1V's official one."""

from __future__ import annotations

import pytest

# Renderings of the official template, from docs/FACTS.md.
OFFICIAL = [
    (
        [{"role": "user", "content": "Hi"}],
        "[gMASK]<sop><|user|>\nHi<|assistant|>\n",
    ),
    (
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q1"}]},
            {"role": "assistant", "content": "<think>r1</think><answer>A1</answer>"},
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q2"}]},
        ],
        "[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\n"
        "<|begin_of_image|><|image|><|end_of_image|>Q1<|assistant|>\n"
        "<think>r1</think><answer>A1</answer><|user|>\n"
        "<|begin_of_video|><|video|><|end_of_video|>Q2<|assistant|>\n",
    ),
]


@pytest.mark.parametrize("messages,expected", OFFICIAL)
def test_template_matches_official_rendering(tiny, messages, expected):
    _, processor = tiny
    out = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert out == expected


def test_template_details(tiny):
    _, processor = tiny
    render = lambda m, g=False: processor.apply_chat_template(m, add_generation_prompt=g, tokenize=False)  # noqa: E731
    # media placeholders in content order, text appended without a separator
    msgs = [{"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image"},
                                          {"type": "text", "text": "B"}, {"type": "image"}]}]
    assert render(msgs) == ("[gMASK]<sop><|user|>\nA<|begin_of_image|><|image|><|end_of_image|>B"
                            "<|begin_of_image|><|image|><|end_of_image|>")
    # The official template itself drops image_url items (rendered by the tokenizer, as
    # FACTS.md measured); the processor path first normalises image_url to an image.
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": "x"},
                                          {"type": "text", "text": "Q"}]}]
    raw = processor.tokenizer.apply_chat_template(msgs, chat_template=processor.chat_template, tokenize=False)
    assert raw == "[gMASK]<sop><|user|>\nQ"
    assert render(msgs) == "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>Q"


def test_special_token_split(tiny):
    """Same special / non-special split as the real tokenizer; think/answer survive skipping."""
    _, processor = tiny
    tok = processor.tokenizer
    from studio.engine.infer.tiny import REASONING_TOKENS, SPECIAL_TOKENS

    for t in SPECIAL_TOKENS + REASONING_TOKENS:
        ids = tok(t, add_special_tokens=False).input_ids
        assert len(ids) == 1, t
    special = set(tok.all_special_tokens)
    assert set(SPECIAL_TOKENS) <= special
    assert not set(REASONING_TOKENS) & special
    text = "<think>a</think><answer><|begin_of_box|>4<|end_of_box|></answer><|user|>"
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids, skip_special_tokens=True) == text.replace("<|user|>", "")
    assert tok.padding_side == "left"
