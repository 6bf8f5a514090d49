"""Issue 28's verifier residuals: the end of the format, whole-number counts written as
decimals, brace-less fractions in intervals and unions, repeating decimals, and the opt-in
unordered list comparison for ``exact``. Each leniency comes with the wrong answers it must
still refuse (a policy must not be paid for them)."""

from __future__ import annotations

import pytest

from studio.engine import rewards as R
from studio.engine.rewards.text import clean_math
from studio.errors import ConfigError

BO, BC = "<|begin_of_box|>", "<|end_of_box|>"


@pytest.fixture(scope="module", autouse=True)
def _sympy_worker_ready():
    """Start the SymPy worker once, so no case's time limit pays for its start."""
    R.warm_up()


def W(body: str) -> str:
    return f"<think>t</think><answer>{BO}{body}{BC}</answer>"


def score(pred: str, ref: str, task: str | None, **settings) -> float:
    """Through the full reward, as RL scores it."""
    kw = {} if task is None else {"task_type": [task]}
    return R.accuracy([W(pred)], answer=[ref], **kw, **settings)[0]


# ----------------------------------------------------------------------------- end of the format
@pytest.mark.parametrize("tail,ok", [
    ("", True), ("<|user|>", True), ("<|endoftext|>", True), ("\n<|observation|>\n", True),
    ("<|endoftext|><|endoftext|>", True), ("<|user|><|endoftext|>", True),  # eos, then batch padding
    ("<|user|><|user|>", False), ("<|endoftext|><|user|>", False), ("<|observation|><|user|>", False), ("<|user|>\nAnd 5?", False),
    ("<|user|>\n<|assistant|>\n<think>u</think><answer>" + BO + "5" + BC + "</answer>", False),
    ("<|assistant|>", False), ("<|system|>", False), (" ok", False),
])
def test_nothing_but_one_end_token_follows_the_answer(tail, ok):
    text = W("4") + tail
    assert R.check_format(text, require_box=True).ok is ok
    assert score_text(text) == float(ok)


def score_text(text: str) -> float:
    return R.accuracy([text], answer=["4"], task_type=["numeric"])[0]


def test_runaway_reason_names_the_tail():
    fc = R.check_format(W("4") + "<|user|>\nmore")
    assert not fc.ok and fc.reason.startswith("text after </answer>")


def test_studio_eval_cuts_at_the_first_eos_and_keeps_stray_role_tokens(tiny_path):
    """``studio eval``'s generation is cut after its first eos, not stripped of every
    control token (which once turned ``<think>t<|assistant|></think>…`` into a pass)."""
    import torch
    from transformers import AutoProcessor, Glm4vForConditionalGeneration

    from studio.engine.workshop.evaluate import generate_outputs

    proc = AutoProcessor.from_pretrained(tiny_path)
    model = Glm4vForConditionalGeneration.from_pretrained(tiny_path).eval()
    tok = proc.tokenizer
    pad = tok.pad_token_id
    good = tok.encode("<think>t</think><answer>4</answer>", add_special_tokens=False) + [pad] * 3
    stray = tok.encode("<think>t<|assistant|></think><answer>4</answer><|user|>", add_special_tokens=False)
    width = max(len(good), len(stray))
    rows = [r + [pad] * (width - len(r)) for r in (good, stray)]

    def fake_generate(input_ids, **kw):
        return torch.cat([input_ids, torch.tensor(rows[: input_ids.shape[0]])], dim=1)

    model.generate = fake_generate
    outs = generate_outputs(model, proc, [{"prompt": "2+2?", "images": []}] * 2, max_new_tokens=4)
    assert outs == ["<think>t</think><answer>4</answer>", "<think>t<|assistant|></think><answer>4</answer>"]
    assert [R.check_format(o).ok for o in outs] == [True, False]


# ----------------------------------------------------------------------------- counting
@pytest.mark.parametrize("pred,ref,expected", [
    ("1", "1.0", 1.0), ("1.0", "1", 1.0), ("3 apples", "3.00", 1.0), ("0", "0.0", 1.0), ("1,000", "1000.0", 1.0),
    # still wrong
    ("2", "1.0", 0.0), ("1.5", "1.0", 0.0), ("1.01", "1", 0.0), ("1", "1.5", 0.0), ("-1", "1.0", 0.0),
    ("1 or 1.0", "1.0", 0.0), ("1.0.0", "1", 0.0),
])
def test_counting_accepts_a_whole_number_written_with_zero_decimals(pred, ref, expected):
    assert score(pred, ref, "counting") == expected


def test_doctor_accepts_whole_decimal_count_references_only():
    assert R.check_reference("1.0", "counting") is None
    assert "not a whole number" in R.check_reference("1.5", "counting")


# ----------------------------------------------------------------------------- fractions in intervals
FRACTIONS = [
    (r"(0,\dfrac12)", r"(0,\frac{1}{2})", 1.0),
    (r"(0,\tfrac{1}{2}]", r"(0, 1/2]", 1.0),
    (r"\left[\dfrac{1}{3}, 2\right)", r"[\frac13,2)", 1.0),
    (r"(-\infty,\tfrac{1}{3})\cup(\tfrac{1}{2},\infty)", r"(-\infty,\frac13)\cup(0.5,\infty)", 1.0),
    (r"\{3,\tfrac12\}", r"\{\frac{1}{2},3\}", 1.0),
    (r"\frac123", r"\frac{3}{2}", 1.0),  # TeX: \frac{1}{2}3
    (r"\left(-\infty, \dfrac{1}{2}\right] \cup \left[\tfrac{3}{2}, +\infty\right)", r"(-\infty,1/2]\cup[3/2,\infty)", 1.0),
    (r"x \in (0, \tfrac{1}{2})", r"(0,\frac12)", 1.0),
    (r"[\dfrac{-1}{2}, \tfrac 1 2]", r"[-1/2,1/2]", 1.0),
    # still wrong
    (r"(0,\dfrac13)", r"(0,\frac{1}{2})", 0.0),
    (r"(0,\tfrac12]", r"(0,\frac{1}{2})", 0.0),
    (r"(-\infty,\tfrac12)\cup(3,\infty)", r"(-\infty,\frac12)\cup[3,\infty)", 0.0),
    (r"(-\infty,\tfrac12)", r"(-\infty,\frac12)\cup(3,\infty)", 0.0),
    (r"\frac123", r"\frac{1}{23}", 0.0),  # latex2sympy's own fix would read 1/23
    (r"(\dfrac12,1)", r"(-\frac{1}{2},1)", 0.0),
]


@pytest.mark.parametrize("pred,ref,expected", FRACTIONS)
def test_tfrac_dfrac_and_braceless_fractions_in_intervals_and_unions(pred, ref, expected):
    # a generous SymPy limit: this checks what is equal, not how fast (bench/verifiers.py does)
    assert score(pred, ref, "math", sympy_timeout_s=5.0) == expected


def test_brace_fractions_follows_tex():
    assert clean_math(r"\dfrac12") == clean_math(r"\frac{1}{2}") == r"\frac{1}{2}"
    assert clean_math(r"\tfrac{a}b") == r"\frac{a}{b}"
    assert clean_math(r"\frac 1 {x+1}") == r"\frac{1}{x+1}"


# ----------------------------------------------------------------------------- repeating decimals
REPEATING = [
    ("0.333...", r"\frac{1}{3}", "math", 1.0), (r"0.\overline{3}", "1/3", "numeric", 1.0),
    (r"0.333\ldots", "1/3", "numeric", 1.0), ("0.333…", "1/3", None, 1.0), (r"0.1\overline{6}", "1/6", "numeric", 1.0),
    ("0.1666...", r"\frac{1}{6}", "math", 1.0), ("0.142857142857...", "1/7", "numeric", 1.0),
    (r"-0.\bar{3}", "-1/3", "numeric", 1.0), (r"1.\overline{3}", "4/3", "math", 1.0), ("0.33...", "1/3", "math", 1.0),
    (r"\frac{1}{3}", r"0.\overline{3}", "math", 1.0),
    # still wrong: cut-off or finite decimals, other blocks, wrong values
    ("0.33", "1/3", "numeric", 0.0), ("0.33", "1/3", "math", 0.0), ("0.333", "1/3", "math", 0.0),
("0.3...", "1/3", "math", 0.0), ("0.34...", "1/3", "numeric", 0.0),
    ("0.333...", "0.333", "numeric", 0.0), (r"0.\overline{3}", "0.33", "numeric", 0.0),
    (r"0.\overline{6}", "1/3", "numeric", 0.0), ("0.1666...", "1/3", "numeric", 0.0), ("0.333...4", "1/3", "numeric", 0.0),
    ("3.14159...", r"\pi", "math", 0.0), ("-0.333...", "1/3", "numeric", 0.0),
]


@pytest.mark.parametrize("pred,ref,task,expected", REPEATING, ids=[f"{p}|{r}|{t}" for p, r, t, _ in REPEATING])
def test_repeating_decimals_are_their_exact_value(pred, ref, task, expected):
    assert score(pred, ref, task, sympy_timeout_s=5.0) == expected


def test_repeating_value():
    from fractions import Fraction

    from studio.engine.rewards.numeric import parse_quantity

    assert parse_quantity(r"0.\overline{3}").value == Fraction(1, 3)
    assert parse_quantity("0.1212...").value == Fraction(4, 33)
    assert parse_quantity("0.4999...").value == Fraction(1, 2)
    assert parse_quantity("3.14159...") is None  # cut off, not repeating: no value at all


# ----------------------------------------------------------------------------- unordered lists
UNORDERED = [
    ("Tokyo, Beijing", "Beijing and Tokyo", 1.0), ("Tokyo and Beijing", "Beijing, Tokyo", 1.0),
    ("osaka; Tokyo & Beijing", "Beijing, Tokyo, and Osaka", 1.0), ("东京和北京", "北京、东京", 1.0),
    ("Beijing and Tokyo", "Beijing and Tokyo", 1.0),
    # missing, extra, repeated, hedged, digits regrouped
    ("Beijing", "Beijing and Tokyo", 0.0), ("Beijing, Tokyo, Osaka", "Beijing and Tokyo", 0.0),
    ("Beijing, Beijing", "Beijing and Tokyo", 0.0), ("Tokyo and Beijing and Tokyo", "Beijing and Tokyo", 0.0),
    ("Beijing or Tokyo", "Beijing and Tokyo", 0.0), ("Beijing, Kyoto", "Beijing and Tokyo", 0.0),
    ("000, 1", "1,000", 0.0), ("Tokyo Beijing", "Beijing and Tokyo", 0.0),
]


@pytest.mark.parametrize("pred,ref,expected", UNORDERED)
def test_exact_unordered_is_a_multiset_of_items(pred, ref, expected):
    assert score(pred, ref, "exact", exact_unordered=True) == expected


def test_exact_unordered_is_off_by_default_and_validated():
    assert score("Tokyo, Beijing", "Beijing and Tokyo", "exact") == 0.0
    cfg = R.RewardConfig(exact_unordered=True)
    cfg.validate()
    [fn] = R.build_reward_funcs(cfg)
    assert fn([W("Tokyo, Beijing")], answer=["Beijing and Tokyo"], task_type=["exact"]) == [1.0]
    with pytest.raises(ConfigError, match="exact_unordered"):
        R.RewardConfig(exact_unordered="yes").validate()
