"""GLM-4.1V and GLM-4.6V-Flash side by side, on the tiny replicas built in code
(docs/FAMILIES.md holds each fact and its source)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.engine.infer import family as F
from studio.engine.infer import reasoning
from studio.errors import InputError

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "sample_data" / "photos" / "coffee.jpg"
SFT_SAMPLE = REPO / "sample_data" / "sft" / "train.jsonl"

HISTORY = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q1"}]},
    {"role": "assistant", "content": None},  # filled per family
    {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q2"}]},
]
# Documented renderings (docs/FAMILIES.md; GLM-4.1V's from docs/FACTS.md).
R41_HI = "[gMASK]<sop><|user|>\nHi<|assistant|>\n"
R41_HISTORY = ("[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\n<|begin_of_image|><|image|>"
               "<|end_of_image|>Q1<|assistant|>\n<think>r1</think><answer>A1</answer><|user|>\n"
               "<|begin_of_video|><|video|><|end_of_video|>Q2<|assistant|>\n")
R46_HI_ON = "[gMASK]<sop><|user|>\nHi<|assistant|>\n"
R46_HI_OFF = "[gMASK]<sop><|user|>\nHi/nothink<|assistant|>\n<think></think>\n"
R46_HISTORY = ("[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\n<|begin_of_image|><|image|>"
               "<|end_of_image|>Q1<|assistant|>\n<think></think>\nA1<|user|>\n"
               "<|begin_of_video|><|video|><|end_of_video|>Q2<|assistant|>\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from studio.engine.infer.tiny import build_tiny

    root = tmp_path_factory.mktemp("families")
    return {like: build_tiny(root / like, like=like) for like in ("glm-4.1v", "glm-4.6v-flash")}


@pytest.fixture(scope="module")
def processors(built):
    from transformers import AutoProcessor

    return {k: AutoProcessor.from_pretrained(v) for k, v in built.items()}


def test_replica_token_ids_and_special_split_match_the_real_layout(processors):
    from studio.engine.infer.tiny import real_id

    t41, t46 = processors["glm-4.1v"].tokenizer, processors["glm-4.6v-flash"].tokenizer
    assert [real_id(t41, t) for t in ("<|endoftext|>", "<|user|>", "<|image|>", "<|video|>", "<think>", "</answer>")] \
        == [151329, 151336, 151343, 151344, 151345, 151348]
    assert [real_id(t46, t) for t in ("<|user|>", "<|begin_of_video|>", "<think>", "/nothink", "<|begin_of_box|>",
                                      "<|image|>", "<|video|>")] == [151336, 151341, 151350, 151360, 151361, 151363, 151364]
    assert "<answer>" not in t46.get_vocab()
    # think tags and boxes survive skip_special_tokens in both; role tokens do not
    for tok in (t41, t46):
        ids = tok("<think>a</think><|begin_of_box|>4<|end_of_box|><|user|>", add_special_tokens=False).input_ids
        assert tok.decode(ids, skip_special_tokens=True) == "<think>a</think><|begin_of_box|>4<|end_of_box|>"


def test_family_is_read_from_the_checkpoint_files(built, processors):
    f41, f46 = F.from_dir(built["glm-4.1v"]), F.from_dir(built["glm-4.6v-flash"])
    assert (f41.name, f41.answer_tags, f41.thinking_switch) == ("glm-4.1v", True, None)
    assert (f46.name, f46.answer_tags, f46.thinking_switch) == ("glm-4.6v", False, "enable_thinking")
    assert f46.sampling == {"temperature": 0.8, "top_p": 0.6, "top_k": 2, "repetition_penalty": 1.1,
                            "max_new_tokens": 256, "do_sample": True}
    assert (f41.context_length, f46.context_length) == (4096, 131072)
    tok = processors["glm-4.6v-flash"].tokenizer
    assert f46.image_token_id == tok.convert_tokens_to_ids("<|image|>")
    assert f46.eos_token_ids == tuple(tok.convert_tokens_to_ids(["<|endoftext|>", "<|user|>", "<|observation|>"]))
    assert len(f41.eos_token_ids) == 4  # GLM-4.1V also stops on </answer>
    assert F.from_loaded(processors["glm-4.6v-flash"]).name == "glm-4.6v"
    from studio.config import GenerationConfig

    g = f46.generation_defaults(GenerationConfig())
    assert (g.temperature, g.top_p, g.top_k, g.repetition_penalty) == (0.8, 0.6, 2, 1.1)


def _render(processor, msgs, **kw):
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False, **kw)


def test_template_renderings_equal_the_documented_ones(processors):
    hi = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    p41, p46 = processors["glm-4.1v"], processors["glm-4.6v-flash"]
    assert _render(p41, hi) == R41_HI
    assert _render(p46, hi) == R46_HI_ON
    assert _render(p46, hi, enable_thinking=True) == R46_HI_ON
    assert _render(p46, hi, enable_thinking=False) == R46_HI_OFF
    h41 = [dict(m) for m in HISTORY]
    h41[2]["content"] = "<think>r1</think><answer>A1</answer>"
    assert _render(p41, h41) == R41_HISTORY
    h46 = [dict(m) for m in HISTORY]
    h46[2]["content"] = "<think>r1</think>A1"  # thinking of an earlier turn is dropped by the template
    assert _render(p46, h46) == R46_HISTORY
    # the training twin renders the same bytes (no generation prompt, string content)
    from studio.engine.train.data import train_template

    conv = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>r</think>A"}]
    plain = p46.apply_chat_template(conv, tokenize=False)
    assert plain == "[gMASK]<sop><|user|>\nQ<|assistant|>\n<think>r</think>\nA"
    assert p46.apply_chat_template(conv, tokenize=False, chat_template=train_template(F.of(p46))) == plain


def test_thinking_switch_and_the_glm41v_refusal(processors):
    from studio.engine.infer.chat import ChatTurn, build_inputs

    hist = [ChatTurn("user", "Hi")]
    p46 = processors["glm-4.6v-flash"]
    off = build_inputs(p46, hist, thinking=False)["input_ids"][0].tolist()
    on = build_inputs(p46, hist)["input_ids"][0].tolist()
    tok = p46.tokenizer
    assert tok.decode(off) == R46_HI_OFF and tok.decode(on) == R46_HI_ON
    with pytest.raises(InputError, match="no thinking switch"):
        build_inputs(processors["glm-4.1v"], hist, thinking=False)


@pytest.mark.parametrize("text,thinking,answer,boxed", [
    ("<think>2+2</think><answer>It is <|begin_of_box|>4<|end_of_box|></answer><|user|>", "2+2", "It is 4", ["4"]),
    ("<think>2+2</think>\nIt is <|begin_of_box|>4<|end_of_box|><|user|>", "2+2", "It is 4", ["4"]),
    ("<think></think>\n<|begin_of_box|>[10,20,30,40]<|end_of_box|>", "", "[10,20,30,40]", ["[10,20,30,40]"]),
])
def test_parser_reads_both_output_formats(text, thinking, answer, boxed):
    p = reasoning.parse(text)
    assert (p.thinking, p.answer, p.boxed, p.thinking_closed) == (thinking, answer, boxed, True)


def test_format_check_follows_the_family():
    from studio.engine.rewards import check_format

    f46 = F.GLM46V_FORMAT
    good46 = "<think>a</think>\n<|begin_of_box|>4<|end_of_box|><|user|>"
    assert check_format(f46.as_reference(good46), require_box=True).boxed == ["4"]
    assert not check_format(good46).ok  # GLM-4.1V's check rejects GLM-4.6V text …
    assert not check_format(f46.as_reference("<think>a</think><answer>4</answer>")).ok  # … and vice versa
    from studio.engine.train.data import check_tags

    assert check_tags("<think>a</think>\nb", f46) == []
    assert check_tags("<think>a</think><answer>b</answer>", f46)[0][3] == "drop_answer_tags"
    assert "GLM-4.6V's format" in check_tags("<think>a</think>b")[0][1]


def test_compare_across_families_and_thinking_on_off(built):
    from studio.config import GenerationConfig
    from studio.engine.infer.compare import Comparer, CompareSettings, SideSpec

    st = CompareSettings(gen=GenerationConfig(max_new_tokens=6, temperature=0.0), device="cpu")
    a, b = SideSpec(str(built["glm-4.1v"])), SideSpec(str(built["glm-4.6v-flash"]), thinking=False)
    res = Comparer().run(a, b, "Hi", None, st)
    assert res.sides["A"].prompt_text == R41_HI
    assert res.sides["B"].prompt_text == R46_HI_OFF
    assert res.sides["A"].stats.new_tokens == res.sides["B"].stats.new_tokens == 6
    with pytest.raises(InputError, match="no thinking switch"):
        Comparer().run(SideSpec(str(built["glm-4.1v"]), thinking=False), b, "Hi", None, st)


def test_memory_plan_for_both_9b_families():
    from studio.config import FLASH_ID, THINKING_ID
    from studio.engine.infer.memplan import DeviceInfo, SideInput, plan_memory, size_of

    s41, s46 = size_of(THINKING_ID), size_of(FLASH_ID)
    assert s46.total == 10_292_777_472 == s41.total  # the hub's count for GLM-4.6V-Flash
    sides = [SideInput("A", s41, "a"), SideInput("B", s46, "b")]
    kinds = {gb: plan_memory(sides, DeviceInfo.simulated(gb)).mode for gb in (24, 48, 80)}
    assert kinds == {24: "both_4bit", 48: "both_resident", 80: "both_resident"}


def _rows46(tmp_path: Path) -> Path:
    rows = [json.loads(x) for x in SFT_SAMPLE.read_text().splitlines() if x.strip()]
    out = tmp_path / "sft"
    out.mkdir()
    import shutil

    shutil.copytree(SFT_SAMPLE.parent / "images", out / "images")
    with (out / "train.jsonl").open("w") as f:
        for r in rows:
            for m in r["messages"]:
                if m["role"] == "assistant":
                    m["content"] = m["content"].replace("<answer>", "").replace("</answer>", "")
            f.write(json.dumps(r) + "\n")
    return out / "train.jsonl"


@pytest.mark.slow
def test_sft_mask_and_one_step_on_a_glm46v_row(built, processors, tmp_path):
    from studio.config import ModelSpec
    from studio.engine.train.data import Collator, Row, doctor, load_rows
    from studio.engine.train.sft import LoraSpec, SFTRunConfig, train

    data = _rows46(tmp_path)
    rows = load_rows(data)
    p46 = processors["glm-4.6v-flash"]
    rep = doctor(rows, p46, 512, decode=False)
    assert not [p for p in rep.problems if p.check == "tags"]
    assert [p.check for p in doctor(rows, processors["glm-4.1v"], 512, decode=False).problems].count("tags") >= 24
    row = Row(messages=[{"role": "user", "content": [{"type": "text", "text": "Q"}]},
                        {"role": "assistant", "content": "<think>r</think>A"}])
    batch = Collator(p46)([row])
    tok = p46.tokenizer
    trained = tok.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert trained == "\n<think>r</think>\nA"
    cfg = SFTRunConfig(model=ModelSpec(name_or_path=str(built["glm-4.6v-flash"]), device="cpu"), data=str(data),
                       lora=LoraSpec(rank=4, alpha=8, dropout=0.0), max_steps=1, batch_size=2, grad_accum=1,
                       max_length=256, eval_split=0.0, save_steps=100, report_to=["none"])
    out = train(cfg, tmp_path / "run")
    assert out["status"] == "finished" and out["global_step"] == 1


@pytest.mark.slow
def test_rl_step_on_a_glm46v_row(built, tmp_path):
    import torch

    from studio.config import ModelSpec
    from studio.engine.train import rl
    from studio.engine.train.curriculum import CurriculumConfig
    from studio.engine.infer.models import load

    torch.manual_seed(0)
    model, processor = load(ModelSpec(name_or_path=str(built["glm-4.6v-flash"]), device="cpu"))
    gen = rl.RolloutGenerator(processor, thinking_budget=4, answer_budget=2)
    assert processor.tokenizer.decode(gen.force_ids) == "</think>\n"  # no <answer> for this family
    scorer = rl.Scorer(rl.RLRunConfig(data="x").rewards, family=F.of(processor))
    r, fmt = scorer(["<think>1 cup</think>\n<|begin_of_box|>1<|end_of_box|><|user|>",
                     "<think>1 cup</think><answer><|begin_of_box|>1<|end_of_box|></answer>"],
                    [rl.RLPrompt(0, "How many cups?", [], [], "1", "counting", None, {"task_type": "counting"}, 1)] * 2)
    assert fmt == [True, False] and r[0] > r[1]
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"<image>How many cups? ({i})", "images": [str(PHOTO)],
                                        "answer": "1", "task_type": "counting"}) + "\n" for i in range(4)))
    cfg = rl.RLRunConfig(data=str(data), num_generations=2, per_device_train_batch_size=4, max_steps=1,
                         thinking_budget=4, answer_budget=2, eval_fraction=0.0, eval_every=0, kl_every=0,
                         save_every=100, lora_rank=4, lora_alpha=8, format_gate="warn",
                         curriculum=CurriculumConfig(offline_grading=False))
    out = rl.train(cfg, tmp_path / "run", model=model, processor=processor,
                   reward_fn=lambda completions, **kw: [float(len(c) % 2) for c in completions])
    assert out["steps"] == 1
    gate = json.loads((tmp_path / "run" / "format_gate.json").read_text())
    assert "<think>…</think>answer" in (gate["warning"] or "")
