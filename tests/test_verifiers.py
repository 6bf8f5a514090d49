"""Issue 14: verifiers a policy cannot game. Every case the issue measured, adversarial
ones of our own, property tests, one format judge, references the doctor must refuse,
time limits from threads, and a smoke run of bench/verifiers.py."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from studio.engine import rewards as R

BO, BC = "<|begin_of_box|>", "<|end_of_box|>"
ROOT = Path(__file__).resolve().parents[1]


def W(body: str) -> str:
    return f"<think>t</think><answer>{BO}{body}{BC}</answer>"


def score(pred: str, ref: str, task: str | None) -> float:
    """Through the full reward, as the issue measured: accuracy([response], answer=…, task_type=…)."""
    kw = {} if task is None else {"task_type": [task]}
    return R.accuracy([W(pred)], answer=[ref], **kw)[0]


# (prediction, reference, task types to try; None = no task_type column)
WRONG = [
    # infinity and overflow equal everything
    *[("\\infty", r, t) for r in ("42", "-3", "\\frac{1}{2}", "0.5", "\\sqrt{2}") for t in ("math", "numeric")],
    ("10^{999}", "42", "math"), ("999!", "42", "math"), ("9^{400}", "42", "math"),
    ("10^{999}", "42", "numeric"), ("999!", "42", "numeric"), ("9^{400}", "42", "numeric"),
    ("0", "\\infty", "math"), ("5", "\\infty", "math"), ("-7", "\\infty", "math"),
    ("-\\infty", "\\infty", "math"), ("\\infty", "-\\infty", "math"), ("\\frac{0}{0}", "0", "numeric"),
    # signs and punctuation lost in a normalisation shortcut
    ("\\frac{1}{2}", "-\\frac{1}{2}", "math"), ("x", "-x", "math"), ("-x", "x", "math"), ("-x", "x", "exact"),
    ("e^{x}", "e^{-x}", "math"), (".5", "5", "math"), ("5!", "5", "math"), ("2 * 3", "2 / 3", "math"),
    ("[0,9)", "(0,9)", "math"), ("(0,9]", "(0,9)", "math"), (".5", "5", "numeric"), ("5!", "5", "numeric"),
    ("2 * 3", "2 / 3", "numeric"), ("3.14", "314", "exact"), ("5!", "5", "exact"),
    # tolerances: no absolute floor, no tolerance for counts
    ("0", "1.6e-19", "numeric"), ("1.6e-19", "0", "numeric"), ("9.1e-31", "1.67e-27", "numeric"),
    ("9.1 \\times 10^{-31}", "1.67 \\times 10^{-27}", "numeric"), ("100001", "100000", "numeric"),
    ("100001", "100000", "math"), ("100001", "100000", "counting"), ("3.000001", "3", "numeric"),
    # free text under math (the default once was math)
    ("Kyoto", "Tokyo", "math"), ("felt", "left", "math"), ("Kyoto", "Tokyo", None), ("felt", "left", None),
    # superscripts
    ("4²", "42", "math"), ("4²", "42", "numeric"), ("4²", "42", None), ("x²", "x2", "math"),
    # units and percent that change the value
    ("5 thousand", "5", "numeric"), ("5k", "5", "numeric"), ("5x", "5", "numeric"), ("5\\pi", "5", "numeric"),
    ("5 cm", "5 m", "numeric"), ("0.5%", "0.5", "numeric"), ("50%", "50.5", "numeric"), ("4 or more", "4", "numeric"),
    ("三四", "34", "numeric"), ("3 4", "34", "numeric"), ("3 4", "34", "math"),
    # adversarial, our own
    ("4, 5", "4", "math"), ("\\{4, 5\\}", "4", "math"), ("4 \\text{ or } 5", "4", "math"), ("x", "X", "math"),
    ("1e999", "1e998", "numeric"), ("NaN", "0", "numeric"), ("\\frac{0}{0}", "\\frac{1}{0}", "math"),
    ("\\frac{1}{0}", "\\infty", "math"), ("42 \\cdot \\infty", "42", "math"), ("0 \\cdot \\infty", "0", "math"),
    ("two", "3", "counting"), ("两只猫", "3", "counting"), ("A or B", "A", "choice"), ("\\(A\\) \\(B\\)", "A", "choice"),
]

RIGHT = [
    ("50%", "0.5", "numeric"), ("50%", "0.5", "math"), ("50\\%", "0.5", None), ("0.5", "50%", "numeric"),
    ("72°", "72", "numeric"), ("72^\\circ", "72", "math"), ("72°", "72", None),
    ("\\frac{1}{2}", "½", "math"), ("½", "\\frac{1}{2}", "numeric"), ("1½", "1.5", "numeric"),
    ("三", "3", "counting"), ("三", "3", "numeric"), ("十只猫", "10", "counting"), ("二十一", "21", "counting"),
    ("28 percent", "28\\%", "numeric"), ("28 percent", "28\\%", "math"), ("28%", "28", "numeric"),
    ("\\(C\\)", "C", "choice"), ("$C$", "C", "choice"), ("\\textbf{(C)}", "C", "choice"), ("\\(C\\)", "C", None),
    # ours: same value, other spelling
    ("\\infty", "\\infty", "math"), ("-\\infty", "-\\infty", "math"), ("1.6 \\times 10^{-19}", "1.6e-19", "numeric"),
    ("4²", "16", "math"), ("4^{2}", "16", "numeric"), ("x²", "x^2", "math"), ("-\\frac{1}{2}", "-0.5", "math"),
    ("2\\sqrt{2}", "\\sqrt{8}", "numeric"), ("1,000", "1000", "numeric"), ("5 cm", "5", "numeric"),
    ("5\\,\\text{cm}", "5 cm", "numeric"), ("−3", "-3", "numeric"), ("(0,9)", "(0, 9)", "math"),
    ("[0,9)", "[0, 9)", "math"), ("x+1", "1+x", "math"), ("\\{1,2\\}", "\\{2,1\\}", "math"),
    ("Tokyo", "tokyo", None), ("Tokyo", "Tokyo", "exact"), ("10", "十", "numeric"), ("0", "0", "numeric"),
    ("1.6e-19", "1.6 \\times 10^{-19}", "numeric"), ("3.0", "3", "numeric"), ("6/2", "3", "numeric"),
]


@pytest.mark.parametrize("pred,ref,task", WRONG, ids=[f"{p}|{r}|{t}" for p, r, t in WRONG])
def test_wrong_answers_score_zero(pred, ref, task):
    assert score(pred, ref, task) == 0.0


@pytest.mark.parametrize("pred,ref,task", RIGHT, ids=[f"{p}|{r}|{t}" for p, r, t in RIGHT])
def test_right_answers_score_one(pred, ref, task):
    assert score(pred, ref, task) == 1.0


def test_exact_verifier_keeps_signs():
    assert R.verify("-x", "x", "exact") == 0.0
    assert R.normalize_text("[0,9)") != R.normalize_text("(0,9)")
    assert R.normalize_text("2 * 3") != R.normalize_text("2 / 3")


@pytest.mark.parametrize("ref,task", [("Tokyo", "exact"), ("42", "numeric"), ("x^{2}+1", "math"), ("(B)", "choice"),
                                      ("[1,2,30,40]", "grounding"), ("\\infty", "math"), ("red circle", "exact")])
def test_task_type_is_inferred_from_the_reference(ref, task):
    assert R.infer_task_type(ref) == task


# ----------------------------------------------------------------------------- properties
def _spellings(v: int, d: int) -> list[str]:
    """Ways to write the rational v/d (d in 1, 2, 4, 5, 8, 10)."""
    from fractions import Fraction

    f = Fraction(v, d)
    dec = f"{float(f):.6f}".rstrip("0").rstrip(".")
    out = [dec, f"{f.numerator}/{f.denominator}" if f.denominator != 1 else str(f.numerator),
           f"\\frac{{{f.numerator}}}{{{f.denominator}}}", f"${dec}$", f"\\({dec}\\)", f"{dec}.", f" {dec} ",
           f"{float(f) * 100:g}\\%"]
    if abs(f) >= 1000 and f.denominator == 1:
        out.append(f"{int(f):,}")
    return out


def test_property_values_beyond_tolerance_score_zero():
    rng = random.Random(14)
    for _ in range(300):
        a = rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30)
        b = a * (1 + rng.choice([-1, 1]) * rng.uniform(2e-5, 0.5))
        if rng.random() < 0.3:  # integers: any difference is beyond tolerance
            a, b = rng.randint(-10 ** 9, 10 ** 9), None
            b = a + rng.choice([-1, 1]) * rng.randint(1, 10)
        for task in ("numeric", "math"):
            assert R.verify(repr(b), repr(a), task) == 0.0, (a, b, task)


def test_property_same_value_other_spelling_scores_one():
    rng = random.Random(41)
    for _ in range(120):
        v, d = rng.randint(-5000, 5000), rng.choice([1, 2, 4, 5, 8, 10])
        forms = _spellings(v, d)
        ref = rng.choice(forms[:3])
        for pred in forms:
            assert R.verify(pred, ref, "numeric") == 1.0, (pred, ref)


def test_property_counts_compare_exactly():
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(0, 10 ** 7)
        assert R.verify(f"{n:,}", str(n), "counting") == 1.0
        assert R.verify(str(n + rng.randint(1, 3)), str(n), "counting") == 0.0


# ----------------------------------------------------------------------------- one format judge
FORMAT_SHAPES = [
    ("<answer>" + BO + "4" + BC + "</answer>", False),                                      # no opening <think>
    ("t</think><answer>" + BO + "4" + BC + "</answer>", False),                             # no opening <think>
    ("hello <think>t</think><answer>" + BO + "4" + BC + "</answer>", False),                # prose before
    ("<think>t</think><answer>" + BO + "4" + BC + "</answer> bye", False),                  # text after
    ("<think>" + BO + "4" + BC + "</think><answer>" + BO + "4" + BC + "</answer>", False),  # box in thinking
    ("<think>a<think>b</think></think><answer>" + BO + "4" + BC + "</answer>", False),       # nested <think>
    ("<think>t</think><answer>" + BO + "4" + BC + "</answer>", True),
    ("<think>t</think>\n<answer>so " + BO + "4" + BC + "</answer><|user|>", True),
]


@pytest.mark.parametrize("text,ok", FORMAT_SHAPES)
def test_eval_reward_and_doctor_agree_on_format(text, ok):
    from studio.engine.train.data import check_tags
    from studio.engine.workshop.evaluate import format_ok

    assert R.check_format(text, require_box=True).ok is ok
    assert format_ok(text) is ok
    assert R.format_reward([text]) == [float(ok)]
    problems = check_tags(text.replace("<|user|>", ""))
    assert (problems == []) is ok, problems


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize("answer,task,says", [
    ("Tokyo", "math", "set task_type to exact"),
    ("x**2 + 2*x + 1", "math", "write it in LaTeX"),
    ("\\infty", "numeric", "use task_type math"),
    ("x+1", "numeric", "use task_type math"),
    ("a few", "counting", "write one count"),
    ("x" * 20_000, "ocr", "split the page"),
    ("\\frac{1}{", "math", "does not parse"),
    ("\\frac{0}{0}", "numeric", "not a finite number"),
])
def test_check_reference_refuses_unmatchable_references_with_row_and_fix(answer, task, says):
    msg = R.check_reference(answer, task, row=7)
    assert msg is not None and msg.startswith("row 7: ") and says in msg


def test_doctor_step_names_rows(tmp_path):
    import json

    from studio.engine.train.rl import check_references, load_prompts
    from studio.errors import DataError

    img = ROOT / "sample_data" / "rl"
    photo = next(p for p in img.rglob("*.png"))
    import shutil

    shutil.copy(photo, tmp_path / photo.name)  # media must sit inside the prompt file's folder
    rows = [{"prompt": "<image>Q", "images": [photo.name], "answer": a, "task_type": t}
            for a, t in (("4", "numeric"), ("Tokyo", "math"), ("x**2", "math"))]
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError) as e:
        check_references(load_prompts(p))
    assert "row 2: reference 'Tokyo' is free text" in str(e.value) and "row 3:" in str(e.value)


# ----------------------------------------------------------------------------- limits
def test_sympy_time_limit_holds_in_a_worker_thread():
    out: list[float] = []
    t0 = time.perf_counter()
    th = threading.Thread(target=lambda: out.append(R.verify("(x+1)^{999}", "x^{999}+1", "math", sympy_timeout_s=0.3)))
    th.start()
    th.join(20)
    assert out == [0.0]
    R.warm_up()  # the first call may have started the worker
    t0 = time.perf_counter()
    th = threading.Thread(target=lambda: out.append(R.verify("(x+1)^{999}", "x^{999}+2", "math", sympy_timeout_s=0.3)))
    th.start()
    th.join(20)
    assert out[-1] == 0.0 and time.perf_counter() - t0 < 0.3 + R.sandbox.GRACE_S + 0.5


def test_ocr_is_bounded_and_exact_below_the_cap():
    rng = random.Random(3)
    a = "".join(rng.choice("ab ") for _ in range(30_000))
    b = "".join(rng.choice("ab ") for _ in range(30_000))
    t0 = time.perf_counter()
    s = R.edit_similarity(a, b)
    assert 0.0 <= s < 1.0 and time.perf_counter() - t0 < 5.0  # generous: a shared CPU
    assert R.edit_similarity(a, a) == 1.0
    # beyond the cap the excess counts as errors: never more than the true similarity
    x, y = "abcde" * 4, "abcdf" * 4
    true = 1 - R.edit_distance(x, y) / 20
    assert R.edit_similarity(x, y, max_chars=8) <= true


def test_bench_smoke():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "verifiers.py"), "--size", "small", "--no-threads"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "slowest single verification:" in r.stdout
    assert "score=1.0" in r.stdout  # the nested-parentheses x is x
