"""Reward table tests: format gate, answer extraction, every verifier, reward hacking,
and text decoded by the tiny tokenizer with special tokens kept."""

from __future__ import annotations

import doctest

import pytest

from studio.engine import rewards as R
from studio.errors import ConfigError, DataError

BO, BC = "<|begin_of_box|>", "<|end_of_box|>"


def W(body: str, think: str = "let me think") -> str:
    """A well-formed completion whose answer is one box holding ``body``."""
    return f"<think>{think}</think><answer>The answer is {BO}{body}{BC}</answer>"


# ----------------------------------------------------------------------------- format
FORMAT_CASES = [
    # (completion, require_box, ok, reason contains)
    (W("4"), True, True, ""),
    (W("4") + "<|user|>", True, True, ""),
    (W("4") + "<|endoftext|><|endoftext|>\n", True, True, ""),  # eos, then padding
    (W("4") + "\n<|observation|>", True, True, ""),
    # the end is one end token (then only padding): a runaway after it is text after </answer>
    (W("4") + "<|user|><|user|>", True, False, "text after </answer>"),
    (W("4") + "<|user|>\nWhat else?", True, False, "text after </answer>"),
    (W("4") + "<|user|>\n<|assistant|>\n<think>b</think><answer>5</answer>", True, False, ""),
    (W("4") + "<|assistant|>", True, False, "<|assistant|> after the answer"),
    (W("4") + "<|user|><|endoftext|><|endoftext|>", True, True, ""),
    (W("4") + "<|endoftext|><|user|>", True, False, "text after </answer>"),
    ("\n<think>a</think>\n<answer>\n" + BO + "4" + BC + "\n</answer>\n", True, True, ""),
    ("<think>a</think><answer>4</answer>", False, True, ""),
    ("<think>a</think><answer>4</answer>", True, False, "no box"),
    ("<think>a</think><answer>" + BO + "4" + BC, True, False, "missing </answer>"),        # unclosed answer
    ("<think>a<answer>" + BO + "4" + BC + "</answer>", True, False, "missing </think>"),    # unclosed think
    ("<think>a</think>" + BO + "4" + BC, True, False, "missing <answer>"),
    ("<answer>" + BO + "4" + BC + "</answer>", True, False, "missing <think>"),
    ("<answer>x</answer><think>a</think>", False, False, "out of order"),
    ("hi <think>a</think><answer>4</answer>", False, False, "outside"),
    ("<think>a</think><answer>4</answer> bye", False, False, "outside"),
    ("<think>a</think><think>b</think><answer>4</answer>", False, False, "2 × <think>"),
    ("<think>a</think><answer>4</answer><answer>5</answer>", False, False, "2 × <answer>"),
    ("<think>a</think><answer>" + BO + "4" + BC + BO + "5" + BC + "</answer>", False, False, "2 boxes"),
    ("<think>a</think><answer>" + BO + "4</answer>", False, False, "unbalanced"),
    ("<think>a</think><answer>4" + BC + "</answer>", False, False, "unbalanced"),
    ("<think>" + BO + "4" + BC + "</think><answer>4</answer>", False, False, "box outside"),
    ("<think>a</think><|user|><answer>4</answer>", False, False, "control token"),
    ("", False, False, "missing <think>"),
]


@pytest.mark.parametrize("text,require_box,ok,reason", FORMAT_CASES)
def test_check_format_table(text, require_box, ok, reason):
    fc = R.check_format(text, require_box=require_box)
    assert fc.ok is ok, fc.reason
    assert reason in fc.reason
    if ok:
        assert R.format_reward([text], require_box=require_box) == [1.0]
    else:
        assert R.format_reward([text], require_box=require_box) == [0.0]


def test_format_check_fields():
    fc = R.check_format("<think> t </think><answer> so " + BO + " 12 " + BC + " </answer>", require_box=True)
    assert (fc.thinking, fc.answer, fc.boxed) == ("t", "so  12", ["12"])


@pytest.mark.parametrize("text,extract,expected", [
    (W("12"), "box", "12"),
    (W("12"), "box_or_answer", "12"),
    ("<think>a</think><answer> 12 </answer>", "box", None),
    ("<think>a</think><answer> 12 </answer>", "box_or_answer", "12"),
    ("<think>a</think><answer>12", "box_or_answer", None),
    ([{"role": "assistant", "content": W("7")}], "box", "7"),
])
def test_extract_answer(text, extract, expected):
    assert R.extract_answer(text, extract=extract) == expected


# ----------------------------------------------------------------------------- verifiers
# (task_type, prediction inside the box, reference, expected score)
VERIFY_CASES = [
    # exact / normalised string
    ("exact", "Paris", "paris", 1.0),
    ("exact", "\\text{Paris.}", "Paris", 1.0),
    ("exact", "  the  Eiffel   tower! ", "The Eiffel Tower", 1.0),
    ("exact", "Lyon", "Paris", 0.0),
    ("exact", "3.14", "314", 0.0),                   # punctuation between digits is kept
    ("exact", "", "Paris", 0.0),
    # numeric / math
    ("numeric", "4", "4", 1.0),
    ("numeric", "4.0", "4", 1.0),
    ("numeric", "3.000001", "3", 0.0),              # an integer reference is matched exactly (issue 14)
    ("numeric", "3.1415927", "3.14159265", 1.0),    # within rel. tol. 1e-5
    ("numeric", "3.001", "3", 0.0),
    ("numeric", "1,000", "1000", 1.0),
    ("numeric", "1/2", "0.5", 1.0),
    ("numeric", "0.5", "\\frac{1}{2}", 1.0),
    ("numeric", "\\frac12", "1/2", 1.0),
    ("numeric", "\\dfrac{3}{4}", "0.75", 1.0),
    ("numeric", "2\\sqrt{2}", "\\sqrt{8}", 1.0),
    ("numeric", "2^{10}", "1024", 1.0),
    ("numeric", "-3", "3", 0.0),
    ("numeric", "abc", "4", 0.0),
    ("numeric", "4 apples", "4", 1.0),              # number + unit is the numeric grammar (issue 14)
    ("numeric", "4 or 5 apples", "4", 0.0),         # no free-text extraction
    ("math", "x+1", "1+x", 1.0),
    ("math", "\\text{yes}", "Yes", 1.0),
    ("math", "yes", "no", 0.0),
    # multiple choice
    ("choice", "(B)", "B", 1.0),
    ("choice", "B.", "B", 1.0),
    ("choice", "b", "(B)", 1.0),
    ("choice", "B) 42 apples", "B", 1.0),
    ("choice", "Answer: C", "C", 1.0),
    ("choice", "C", "B", 0.0),
    ("choice", "A, B", "B", 0.0),
    ("choice", "AB", "B", 0.0),
    ("choice", "B. or (C)", "B", 0.0),
    # counting
    ("counting", "3", "3", 1.0),
    ("counting", "three", "3", 1.0),
    ("counting", "There are 3 cats.", "three", 1.0),
    ("counting", "twenty-one", "21", 1.0),
    ("counting", "4", "3", 0.0),
    ("counting", "2.5", "3", 0.0),
    ("counting", "3 or 4", "3", 0.0),
    ("counting", "3x4", "3", 0.0),
    # OCR similarity
    ("ocr", "Hello World", "hello  world", 1.0),
    ("ocr", "abcd", "abcf", 0.75),
    ("ocr", "", "abcd", 0.0),
    ("ocr", "kitten", "sitting", 1 - 3 / 7),
    # grounding IoU (0–1000)
    ("grounding", "[0,0,100,100]", "[0,0,100,100]", 1.0),
    ("grounding", "[50,0,150,100]", "[0,0,100,100]", 1 / 3),
    ("grounding", "[100,100,0,0]", "[0,0,100,100]", 1.0),          # corners in any order
    ("grounding", "[500,500,600,600]", "[0,0,100,100]", 0.0),
    ("grounding", "[[0,0,100,100],[200,200,300,300]]", "[[200,200,300,300],[0,0,100,100]]", 1.0),
    ("grounding", "the dog", "[0,0,100,100]", 0.0),
]


@pytest.mark.parametrize("task_type,pred,ref,expected", VERIFY_CASES)
def test_verifier_table(task_type, pred, ref, expected):
    assert R.verify(pred, ref, task_type) == pytest.approx(expected, abs=1e-9)
    # Same through the full reward: well-formed completion, format gate passes.
    assert R.accuracy([W(pred)], answer=[ref], task_type=[task_type]) == pytest.approx([expected], abs=1e-9)
    # And through the per-type registry function.
    assert R.get_reward(R.canonical_task_type(task_type))([W(pred)], answer=ref)[0] == pytest.approx(expected)


def test_grounding_threshold_and_pixels():
    c = [W("[50,0,150,100]")]
    assert R.grounding_reward(c, answer="[0,0,100,100]", iou_threshold=0.3) == [1.0]
    assert R.grounding_reward(c, answer="[0,0,100,100]", iou_threshold=0.5) == [0.0]
    # Reference in pixels of a 200×50 image: [0,0,20,5] px is [0,0,100,100] in thousandths.
    got = R.grounding_reward([W("[0,0,100,100]")], answer=["[0,0,20,5]"], image_size=[[200, 50]],
                             ref_box_scale="pixels")
    assert got == [1.0]


def test_format_failure_scores_zero_for_every_verifier():
    bad = "<think>a</think>" + BO + "4" + BC  # no <answer>
    for name in ("accuracy", "math", "numeric", "exact", "choice", "counting", "ocr", "grounding"):
        assert R.get_reward(name)([bad], answer="4", task_type="math") == [0.0]


def test_format_bonus_is_optional_and_off_by_default():
    good_wrong, good_right, bad = W("5"), W("4"), "<think>a</think><answer>" + BO + "4" + BC
    assert R.accuracy([good_wrong, good_right, bad], answer="4") == [0.0, 1.0, 0.0]
    assert R.accuracy([good_wrong, good_right, bad], answer="4", format_bonus=0.1) == [0.1, 1.1, 0.0]


def test_box_or_answer_fallback():
    plain = "<think>a</think><answer>4</answer>"
    assert R.accuracy([plain], answer="4") == [0.0]  # default: the box is required
    assert R.accuracy([plain], answer="4", extract="box_or_answer") == [1.0]
    # In fallback mode the box still wins over the surrounding text.
    assert R.accuracy([W("4")], answer="4", extract="box_or_answer") == [1.0]


# ----------------------------------------------------------------------------- hacking
HACKS = [
    ("box outside <answer>", "<think>" + BO + "4" + BC + "</think><answer>4</answer>", "4", "math"),
    ("box before <answer>", "<think>a</think>" + BO + "4" + BC + "<answer>4</answer>", "4", "math"),
    ("two boxes", "<think>a</think><answer>" + BO + "3" + BC + " or " + BO + "4" + BC + "</answer>", "4", "math"),
    ("list of numbers", W("3, 4, 5"), "4", "math"),
    ("list of numbers (numeric)", W("3, 4, 5"), "4", "numeric"),
    ("alternatives", W("4 or 5"), "4", "math"),
    ("several counts", W("3 4 5 6"), "4", "counting"),
    ("every letter", W("A B C D"), "B", "choice"),
    ("letters glued", W("ABCD"), "B", "choice"),
    ("many boxes", W(", ".join(f"[{i},{i},{i + 100},{i + 100}]" for i in range(0, 900, 10))),
     "[0,0,100,100]", "grounding"),
    ("full image box", W("[0,0,1000,1000]"), "[0,0,100,100]", "grounding"),
    ("answer echoed in thinking only", "<think>4</think><answer>no idea</answer>", "4", "math"),
    ("unclosed answer", "<think>a</think><answer>" + BO + "4" + BC, "4", "math"),
    ("second think after answer", W("4") + "<think>more</think>", "4", "math"),
]


@pytest.mark.parametrize("label,completion,ref,task", HACKS, ids=[h[0] for h in HACKS])
def test_reward_hacking_attempts_score_low(label, completion, ref, task):
    for extract in ("box", "box_or_answer"):
        (score,) = R.accuracy([completion], answer=[ref], task_type=[task], extract=extract)
        assert score <= 0.011, (label, extract, score)


@pytest.mark.parametrize("expr", ["9^{9^{9^{9}}}", "2^{2^{40}}", "10^{100000}", "1000000!", "(2^{99})!",
                                  "\\sum_{i=1}^{10^{9}} i", "1" * 150])
def test_expensive_expressions_are_refused_quickly(expr):
    import time

    t0 = time.perf_counter()
    assert R.accuracy([W(expr)], answer=["4"], task_type=["math"]) == [0.0]
    assert time.perf_counter() - t0 < 1.0
    assert not R.safe_for_sympy(expr) or R.parse_number(expr) is not None


# ----------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def tokenizer():
    """The tiny model's tokenizer. ``build_processor()`` builds exactly this object and wraps
    it with image/video processors; building it alone skips a ~4 s torch import when this
    file runs by itself."""
    from studio.engine.infer import tiny

    build = getattr(tiny, "_build_tokenizer", None)
    return build() if build is not None else tiny.build_processor().tokenizer


def _roundtrip(tok, text: str) -> str:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return tok.decode(ids, skip_special_tokens=False)


@pytest.mark.parametrize("completion,ref,task,expected", [
    (W("4") + "<|user|>", "4", "counting", 1.0),
    (W("\\frac{1}{2}") + "<|endoftext|>", "0.5", "math", 1.0),
    (W("(B)") + "<|endoftext|><|endoftext|>", "B", "choice", 1.0),
    (W("[0,0,100,100]") + "<|user|>", "[0,0,100,100]", "grounding", 1.0),
    (W("five") + "<|observation|>", "4", "counting", 0.0),
    ("<think>2+2</think><answer>" + BO + "4" + BC + "<|user|>", "4", "math", 0.0),         # truncated
    ("<think>a</think><answer>" + BO + "3" + BC + BO + "4" + BC + "</answer><|user|>", "4", "math", 0.0),
    ("<think>a</think>" + BO + "4" + BC + "<|endoftext|>", "4", "math", 0.0),             # no <answer>
])
def test_rewards_on_tiny_tokenizer_decode_with_special_tokens(tokenizer, completion, ref, task, expected):
    decoded = _roundtrip(tokenizer, completion)
    assert "<think>" in decoded and BO in decoded  # tags survive decoding
    assert R.accuracy([decoded], answer=[ref], task_type=[task]) == [expected]


def test_tiny_tokenizer_skip_special_tokens_drops_role_tokens_only(tokenizer):
    ids = tokenizer(W("4") + "<|user|>", add_special_tokens=False)["input_ids"]
    skipped = tokenizer.decode(ids, skip_special_tokens=True)
    assert "<|user|>" not in skipped
    assert R.accuracy([skipped], answer=["4"]) == [1.0]


# ----------------------------------------------------------------------------- references, registry
@pytest.mark.parametrize("answer,task,problem", [
    ("abc", "numeric", "reference 'abc' is not a number"),
    ("x+1", "numeric", "is not a number"),
    ("1/2", "numeric", None),
    ("\\frac{1}{2}", "numeric", None),
    ("1,000", "numeric", None),
    ("abc", "math", "free text"),                   # prose is never algebra (issue 14)
    ("x**2 + 2*x + 1", "math", "Python syntax"),
    ("\\infty", "numeric", "not a finite number"),
    ("\\infty", "math", None),
    ("", "math", "empty"),
    (None, "exact", "empty"),
    ("foo", "choice", "not a choice letter"),
    ("(C)", "choice", None),
    ("2.5", "counting", "not a whole number"),
    ("seven", "counting", None),
    ("anything", "ocr", None),
    ("cat", "grounding", "no [x1,y1,x2,y2] box"),
    ("[10,10,10,50]", "grounding", "empty box"),
    ("[[1,2,30,40],[5,5,50,60]]", "grounding", None),
    ("<answer>" + BO + "7" + BC + "</answer>", "numeric", None),
    ("1", "poem", "unknown task_type 'poem'"),
])
def test_check_reference(answer, task, problem):
    got = R.check_reference(answer, task)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got


def test_unknown_reward_name_lists_valid_names():
    with pytest.raises(ConfigError) as e:
        R.get_reward("acuracy")
    for name in R.REGISTRY:
        assert name in str(e.value)
    with pytest.raises(ConfigError, match="extract"):
        R.get_reward("accuracy", extrct="box")


def test_bound_settings_and_names():
    fn = R.get_reward("accuracy", extract="box_or_answer")
    assert fn.__name__ == "accuracy"
    assert fn(["<think>a</think><answer>4</answer>"], answer=["4"]) == [1.0]
    funcs = R.build_reward_funcs(R.RewardConfig(functions=["accuracy", "format"], format_bonus=0.5))
    assert [f.__name__ for f in funcs] == ["accuracy", "format"]
    assert funcs[0]([W("4")], answer="4") == [1.5]


def test_reward_config_validation_and_yaml(tmp_path):
    cfg = R.RewardConfig(functions=["accuracy", "grounding"], iou_threshold=0.5)
    cfg.to_yaml(tmp_path / "r.yaml")
    assert R.RewardConfig.from_yaml(tmp_path / "r.yaml") == cfg
    with pytest.raises(ConfigError, match="valid names"):
        R.RewardConfig(functions=["nope"]).validate()
    with pytest.raises(ConfigError, match="extract"):
        R.RewardConfig(extract="all").validate()
    with pytest.raises(ConfigError, match="default_task_type"):
        R.RewardConfig(default_task_type="poem").validate()


def test_bad_columns():
    with pytest.raises(DataError, match="answer"):
        R.accuracy([W("4")])
    with pytest.raises(DataError, match="task_type"):
        R.accuracy([W("4")], answer=["4"], task_type=["poem"])
    with pytest.raises(DataError, match="2 values for 1"):
        R.accuracy([W("4")], answer=["4", "5"])
    # TRL's extra kwargs are ignored; a missing reference scores 0 (the doctor reports it).
    assert R.accuracy([W("4"), W("4")], answer=["4", None], prompts=["p", "p"],
                      completion_ids=[[1], [2]], trainer_state=None) == [1.0, 0.0]


def test_edit_distance_matches_reference_dp():
    import random

    def ref_dp(a, b):
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]

    rng = random.Random(0)
    for _ in range(200):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("abc") for _ in range(rng.randint(0, 12)))
        assert R.edit_distance(a, b) == ref_dp(a, b), (a, b)


def test_module_doctests():
    import importlib
    import pkgutil

    attempted = failed = 0
    for info in pkgutil.iter_modules(R.__path__):
        res = doctest.testmod(importlib.import_module(f"{R.__name__}.{info.name}"), optionflags=doctest.ELLIPSIS)
        attempted, failed = attempted + res.attempted, failed + res.failed
    assert attempted >= 40 and failed == 0
