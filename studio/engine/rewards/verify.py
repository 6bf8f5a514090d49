"""One prediction against one reference: task-type inference, :func:`verify`, and the
data doctor's :func:`check_reference`.

Answer grammar and comparison per task type (details in each module):

=============  ==========================================  ==================================
task type      grammar of the answer                       comparison
=============  ==========================================  ==================================
``numeric``    number + optional %/°/unit (numeric.py),    integers exactly; else relative
               or a closed form (``2\\sqrt{2}``, ``\\pi/3``)   tolerance (floor 1e-12); ∞ = ∞ only
``math``       number, expression, interval, set, tuple    numbers as above; expressions,
               (LaTeX); prose is compared as text only     sets… by SymPy/Math-Verify
``choice``     one option letter (choice.py)               letter equality
``counting``   text with exactly one whole number          integer equality
               (digits, English words, Chinese numerals)
``exact``      free text                                   normalised text equality (text.py);
                                                           with ``exact_unordered``, a list
                                                           in any order (same items)
``ocr``        free text, ≤ 10,000 chars counted           1 − edit distance / length
``grounding``  ``[x1,y1,x2,y2]`` box(es), 0–1000            IoU, Hungarian matching
=============  ==========================================  ==================================
"""

from __future__ import annotations

import re
from typing import Any

from studio.engine.infer.reasoning import parse_boxes
from studio.engine.rewards import sandbox
from studio.engine.rewards.choice import parse_choice, parse_count
from studio.engine.rewards.config import AUTO, DEFAULTS, TASK_TYPES, canonical_task_type
from studio.engine.rewards.format import reference_text
from studio.engine.rewards.grounding import MAX_GROUNDING_CHARS, grounding_score, to_thousandths
from studio.engine.rewards.math_expr import math_equal
from studio.engine.rewards.numeric import parse_quantity
from studio.engine.rewards.ocr import MAX_OCR_CHARS, edit_similarity
from studio.engine.rewards.text import clean_math, looks_like_math, normalize_text, same_items
from studio.errors import DataError

_BOXES_ONLY = re.compile(r"[\s\[\],.\d-]+")
_LETTER = re.compile(r"\(?[A-Z]\)?")


def infer_task_type(ref: Any) -> str:
    """The task type for a reference whose row has none (``default_task_type="auto"``).

    Boxes → ``grounding``; a lone capital letter (``B``, ``(B)``) → ``choice``; a finite
    number → ``numeric``; math (digits, operators, commands) → ``math``; words → ``exact``.
    GLM's and TRL's examples default to ``math``; we do not, because the algebra parser
    reads a word as a product of letters (``Kyoto`` = ``Tokyo``).

    >>> [infer_task_type(r) for r in ("[1,2,30,40]", "(B)", "0.5", "x^2", "\\\\infty", "Tokyo")]
    ['grounding', 'choice', 'numeric', 'math', 'math', 'exact']
    """
    r = reference_text(ref)
    if parse_boxes(r) and _BOXES_ONLY.fullmatch(r):
        return "grounding"
    if _LETTER.fullmatch(r.strip()):
        return "choice"
    q = parse_quantity(r)
    if q is not None and q.finite:
        return "numeric"
    return "math" if looks_like_math(r) else "exact"


def resolve_task_type(task_type: Any, ref: Any) -> str:
    """Canonical task type of a row: ``None``/``""``/``"auto"`` → :func:`infer_task_type`.

    Raises:
        DataError: unknown task type (the message lists the valid ones).
    """
    if task_type in (None, "") or str(task_type).strip().lower() == AUTO:
        return infer_task_type(ref)
    tt = canonical_task_type(task_type)
    if tt is None:
        raise DataError(f"Unknown task_type {task_type!r}; valid task types: auto, {', '.join(TASK_TYPES)}.")
    return tt


def verify(pred: str, ref: Any, task_type: str = "math", *, image_size: Any = None,
           **settings: Any) -> float:
    """Score one extracted prediction against one reference (no format gate, no bonus).

    Args:
        pred: the extracted answer (see :func:`~studio.engine.rewards.extract_answer`).
        ref: the reference answer (a string; numbers/lists are converted).
        task_type: one of :data:`TASK_TYPES`, an alias, or ``"auto"``/``""`` (inferred
            from the reference, :func:`infer_task_type`).
        image_size: ``[w, h]`` of the image, for grounding with ``ref_box_scale="pixels"``.
        **settings: :class:`~studio.engine.rewards.RewardConfig` fields (``rel_tol``…).

    Returns:
        A float in [0, 1]; 1.0 only for a right answer. Takes at most about
        ``sympy_timeout_s`` + 0.25 s once the SymPy worker runs (the first expression of a
        process waits 1–2 s for it unless :func:`~studio.engine.rewards.warm_up` ran;
        ``bench/verifiers.py`` measures the worst cases).

    Raises:
        DataError: unknown task type.

    >>> verify("(b)", "B", "choice"), verify("3", "three", "counting"), verify("x", "y", "exact")
    (1.0, 1.0, 0.0)
    >>> verify("50%", "0.5", "numeric"), verify("\\\\infty", "42", "math"), verify("Kyoto", "Tokyo")
    (1.0, 0.0, 0.0)
    """
    cfg = {**DEFAULTS, **{k: v for k, v in settings.items() if k in DEFAULTS}}
    tt = resolve_task_type(task_type, ref)
    r = reference_text(ref)
    if pred is None or not r:
        return 0.0
    pred = str(pred)
    if tt in ("math", "numeric"):
        return float(math_equal(pred, r, rel_tol=cfg["rel_tol"], max_expr_chars=cfg["max_expr_chars"],
                                sympy_timeout_s=cfg["sympy_timeout_s"]))
    if tt == "exact":
        n = normalize_text(pred[:4000])
        if n and n == normalize_text(r):
            return 1.0
        return float(bool(cfg["exact_unordered"]) and same_items(pred[:4000], r))
    if tt == "choice":
        a, b = parse_choice(pred), parse_choice(r)
        return float(a is not None and a == b)
    if tt == "counting":
        a, b = parse_count(pred, words=cfg["count_words"]), parse_count(r, words=True)
        return float(a is not None and a == b)
    if tt == "ocr":
        return edit_similarity(pred, r, case_sensitive=cfg["ocr_case_sensitive"])
    if len(pred) > MAX_GROUNDING_CHARS:
        return 0.0
    ref_boxes = parse_boxes(r)
    if cfg["ref_box_scale"] == "pixels":
        ref_boxes = to_thousandths(ref_boxes, image_size) or []
    return grounding_score(parse_boxes(pred), ref_boxes, iou_threshold=cfg["iou_threshold"])


def row_task_type(task_type: Any, answer: Any, choices: Any = None) -> str:
    """The task type to score a data row with: ``"exact"`` when a multiple-choice row's
    answer is a *word* among its ``choices`` ("left"/"right", "red circle"), since the
    ``choice`` verifier compares option letters; otherwise ``task_type`` unchanged (empty
    → ``"auto"``, inferred from the reference). Used by the RL data loader and
    ``studio eval`` so both score alike.

    >>> row_task_type("choice", "left", ["left", "right"]), row_task_type("mc", "B", ["A", "B"])
    ('exact', 'mc')
    """
    tt = str(task_type or AUTO)
    if (canonical_task_type(tt) == "choice" and isinstance(choices, list)
            and check_reference(answer, "choice") is not None
            and str(answer).strip() in [str(c).strip() for c in choices]):
        return "exact"
    return tt


_PYTHONISH = re.compile(r"\*\*|(?<!\\)\b(?:sqrt|exp|log)\(|(?<!\\)\bpi\b")


def _math_problem(r: str, numeric: bool) -> str | None:
    q = parse_quantity(r)
    if q is not None:
        if not q.finite and numeric:
            return (f"reference {r!r} is not a finite number; use task_type math "
                    "(an infinity matches only the same infinity)")
        return None
    if not looks_like_math(r):
        what = "is not a number (it is free text)" if numeric else \
            "is free text, which the math verifier never parses as algebra"
        return f"reference {r!r} {what}; set task_type to exact (or leave it empty to infer it)"
    if _PYTHONISH.search(r):
        return (f"reference {r!r} is written in Python syntax; write it in LaTeX "
                "(x^{2}+2x+1, \\sqrt{2}, \\pi) so that LaTeX answers can match it")
    c = clean_math(r)
    if len(c) > 4 * DEFAULTS["max_expr_chars"]:
        return f"reference {r[:40]!r}… is longer than {4 * DEFAULTS['max_expr_chars']} characters; shorten it"
    kind = sandbox.sympy_kind(c, timeout_s=max(2.0, DEFAULTS["sympy_timeout_s"]))
    if kind is None:
        return f"reference {r!r} does not parse as LaTeX math; fix its LaTeX or set task_type to exact"
    if numeric and kind == "nonfinite":
        return (f"reference {r!r} is not a finite number; use task_type math "
                "(an infinity matches only the same infinity)")
    if numeric and kind != "number":
        return f"reference {r!r} is not a number; use task_type math for expressions or exact for text"
    return None


def check_reference(answer: Any, task_type: str | None = "math", *, row: int | None = None) -> str | None:
    """Whether a dataset's reference answer can be matched by the task type's verifier.

    Returns ``None`` when it can, else one sentence for the data doctor saying what to
    change (prefixed ``"row N: "`` when ``row`` is given). A reference is refused when no
    answer could ever score 1 against it, or only by accident: free text under ``math``,
    Python syntax, ``\\infty`` under ``numeric``, an OCR page over the length cap, an
    empty box.

    >>> check_reference("abc", "numeric")
    "reference 'abc' is not a number (it is free text); set task_type to exact (or leave it empty to infer it)"
    >>> check_reference("1/2", "numeric") is None, check_reference("[1,2,3,4]", "grounding") is None
    (True, True)
    >>> check_reference("Tokyo", "math", row=3)[:39]
    "row 3: reference 'Tokyo' is free text, "
    """
    msg = _reference_problem(answer, task_type)
    return f"row {row}: {msg}" if msg and row is not None else msg


def _reference_problem(answer: Any, task_type: str | None) -> str | None:
    r = reference_text(answer)
    try:
        tt = resolve_task_type(task_type, r)
    except DataError:
        return f"unknown task_type {task_type!r} (valid: auto, {', '.join(TASK_TYPES)})"
    if not r:
        return "reference answer is empty; write the expected answer"
    if tt in ("math", "numeric"):
        return _math_problem(r, tt == "numeric")
    if tt == "exact":
        return None if normalize_text(r) else f"reference {r!r} is empty after normalisation"
    if tt == "choice":
        return None if parse_choice(r) else f"reference {r!r} is not a choice letter (A, B, C…); write the letter"
    if tt == "counting":
        return None if parse_count(r) is not None else (
            f"reference {r!r} is not a whole number; write one count such as 3")
    if tt == "ocr":
        return None if len(r) <= MAX_OCR_CHARS else (
            f"reference is {len(r)} characters, over the OCR cap of {MAX_OCR_CHARS}; split the page")
    boxes = parse_boxes(r)
    if not boxes:
        return f"reference {r!r} has no [x1,y1,x2,y2] box"
    if any(min(b.x1, b.y1, b.x2, b.y2) < 0 for b in boxes):
        return f"reference {r!r} has negative box coordinates"
    if any(b.x1 == b.x2 or b.y1 == b.y2 for b in boxes):
        return f"reference {r!r} has an empty box (zero width or height)"
    return None
