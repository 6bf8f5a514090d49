"""Verifiable rewards for GRPO on GLM-4.1V-Thinking outputs.

Follows the GLM-4.1V-Thinking report (arXiv 2507.01006, §5) and its public reward code
(``glmv_reward``): only the ``<|begin_of_box|>…<|end_of_box|>`` span inside ``<answer>``
is compared with the reference; any format failure scores the minimum, 0; exact match →
numeric with relative tolerance 1e-5 → SymPy for expressions; OCR by normalised edit
distance; counting by integer compare; grounding by IoU on the 0–1000 box scale.

Stable API (``studio/engine/rl.py``, the RL tab and the data doctor build on it)
--------------------------------------------------------------------------------
Reward functions — TRL's signature ``fn(completions: list[str], **kwargs) -> list[float]``:

* ``completions``: decoded **with special tokens kept** (a trailing ``<|user|>`` /
  ``<|endoftext|>`` and padding are fine); conversational completions
  (``[{"role": "assistant", "content": ...}]``) are accepted too.
* dataset columns arrive as kwargs, one value per completion (a scalar is broadcast):
  ``answer`` (reference, required by the verifiers), ``task_type`` (see
  :data:`TASK_TYPES`; missing/empty → ``default_task_type``), ``image_size`` (``[w, h]``,
  grounding only, used when references are in pixels). Unknown kwargs (``prompts``,
  ``completion_ids``, ``trainer_state``, …) are ignored.
* settings are kwargs too (the names of :class:`RewardConfig`'s fields); bind them with
  :func:`get_reward` / :func:`build_reward_funcs`.

=================  ==============================================================
``REGISTRY`` name  reward
=================  ==============================================================
``accuracy``       picks the verifier from ``task_type`` per row (the main reward)
``format``         1.0 if the format is right, else 0.0 (for logging)
``math``           exact/normalised string → number (rel. tol.) → SymPy expression
``numeric``        same as ``math``; the reference must be a number/closed form
``exact``          normalised string equality only
``choice``         multiple-choice letter (``"(B)"``, ``"B."``, ``"b"`` → ``B``)
``counting``       integer compare (digits, or words such as "three")
``ocr``            1 − normalised edit distance, in [0, 1]
``grounding``      IoU of ``[x1,y1,x2,y2]`` boxes (0–1000 scale), or 1/0 at a threshold
=================  ==============================================================

Helpers: :func:`get_reward`, :func:`build_reward_funcs`, :class:`RewardConfig`,
:func:`check_format` (→ :class:`FormatCheck` with a reason), :func:`extract_answer`,
:func:`verify` (one prediction vs one reference, no format gate),
:func:`check_reference` (is a dataset's reference scoreable? → message or ``None``),
:func:`normalize_text`, :func:`math_equal`, :func:`edit_similarity`, :func:`box_iou`,
:func:`grounding_score`, :func:`parse_choice`, :func:`parse_count`, :func:`parse_number`,
:func:`safe_for_sympy`, :func:`canonical_task_type`, :func:`completion_text`.

Reward-hacking guards: the box must sit inside ``<answer>`` and be the only one; SymPy
parses the *whole* box (no free-text extraction, so "3, 4, 5" is a set, not 5); choice
and counting refuse answers naming several options/numbers; grounding divides by
max(#predicted, #reference) boxes; expressions that would make SymPy compute huge
integers (uninterruptible C code) are refused before parsing.

Format (what :func:`check_format` accepts): optional whitespace, ``<think>…</think>``,
optional whitespace, ``<answer>…</answer>``, optional whitespace, then only control tokens
(``<|user|>``, ``<|endoftext|>``…). Exactly one of each tag, in that order; no control
token anywhere else; no box marker outside ``<answer>``; at most one box, well formed,
and exactly one where the task expects one (``require_box``; by default whenever
``extract="box"``).

All scores are floats; a format failure is 0.0 and a correct answer is 1.0 (plus
``format_bonus``, 0.0 by default, for any completion with a correct format).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import signal
import threading
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from studio.config import YamlConfig, check
from studio.engine.reasoning import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    BOX_CLOSE,
    BOX_OPEN,
    CONTROL_TOKENS,
    THINK_CLOSE,
    THINK_OPEN,
    Box,
    parse,
    parse_boxes,
)
from studio.errors import ConfigError, DataError

RewardFn = Callable[..., list[float]]

#: Canonical task types, each with its verifier.
TASK_TYPES = ("math", "numeric", "exact", "choice", "counting", "ocr", "grounding")
#: Other spellings accepted in a dataset's ``task_type`` column.
TASK_ALIASES = {
    "text": "exact", "string": "exact", "short_answer": "exact",
    "number": "numeric", "expression": "math",
    "mc": "choice", "multiple_choice": "choice", "multiple-choice": "choice", "mcq": "choice",
    "count": "counting",
    "box": "grounding", "bbox": "grounding", "detection": "grounding",
}
EXTRACT_MODES = ("box", "box_or_answer")


# ----------------------------------------------------------------------------- settings
@dataclasses.dataclass
class RewardConfig(YamlConfig):
    """Reward settings (the ``rewards:`` block of an RL config).

    Attributes:
        functions: reward names from :data:`REGISTRY`; TRL sums them (equal weights).
        extract: ``"box"`` — the answer is the box inside ``<answer>`` (no box, no
            answer); ``"box_or_answer"`` — the box if there is one, else the whole answer.
        require_box: format needs exactly one box; ``None`` means "when extract is box".
        format_bonus: added to the score of every completion whose format is right
            (0.0 by default: no additive bonus, as RLCS.md says).
        iou_threshold: grounding reward is the IoU (``None``) or 1.0 when IoU ≥ this.
        ref_box_scale: grounding references on the ``"0-1000"`` scale (GLM's) or in
            ``"pixels"`` (then the ``image_size`` column, ``[w, h]``, converts them).
        rel_tol: relative tolerance of numeric comparison (GLM public code: 1e-5).
        count_words: counting accepts number words ("three") besides digits.
        ocr_case_sensitive: OCR similarity compares case.
        default_task_type: task type of rows without a ``task_type``.
        max_expr_chars: longer predictions skip the SymPy step (guards against slow or
            adversarial expressions); numbers are still compared.
        sympy_timeout_s: time limit of one SymPy parse/compare (main thread only).
    """

    functions: list[str] = dataclasses.field(default_factory=lambda: ["accuracy"])
    extract: str = "box"
    require_box: bool | None = None
    format_bonus: float = 0.0
    iou_threshold: float | None = None
    ref_box_scale: str = "0-1000"
    rel_tol: float = 1e-5
    count_words: bool = True
    ocr_case_sensitive: bool = False
    default_task_type: str = "math"
    max_expr_chars: int = 200
    sympy_timeout_s: float = 2.0

    def validate(self) -> None:
        check(bool(self.functions), "functions", f"needs at least one of {', '.join(REGISTRY)}.")
        for name in self.functions:
            check(name in REGISTRY, "functions",
                  f"has unknown reward {name!r}; valid names: {', '.join(REGISTRY)}.")
        check(self.extract in EXTRACT_MODES, "extract", "must be box or box_or_answer.")
        check(self.format_bonus >= 0, "format_bonus", "must be 0 or more.")
        check(self.iou_threshold is None or 0 < self.iou_threshold <= 1, "iou_threshold",
              "must be empty (reward = IoU) or in (0, 1].")
        check(self.ref_box_scale in ("0-1000", "pixels"), "ref_box_scale", "must be 0-1000 or pixels.")
        check(0 <= self.rel_tol < 1, "rel_tol", "must be in [0, 1).")
        check(canonical_task_type(self.default_task_type) is not None, "default_task_type",
              f"must be one of {', '.join(TASK_TYPES)}.")
        check(self.max_expr_chars >= 1, "max_expr_chars", "must be at least 1.")
        check(self.sympy_timeout_s > 0, "sympy_timeout_s", "must be more than 0.")

    def settings(self) -> dict[str, Any]:
        """The verifier settings as kwargs (everything but ``functions``)."""
        d = self.to_dict()
        d.pop("functions")
        return d


_DEFAULTS = RewardConfig().settings()


def canonical_task_type(task_type: str | None) -> str | None:
    """Map a task type (or alias, any case) to one of :data:`TASK_TYPES`; ``None`` if unknown.

    >>> canonical_task_type("Multiple_Choice"), canonical_task_type("ocr"), canonical_task_type("poem")
    ('choice', 'ocr', None)
    """
    if task_type is None:
        return None
    t = str(task_type).strip().lower()
    t = TASK_ALIASES.get(t, t)
    return t if t in TASK_TYPES else None


# ----------------------------------------------------------------------------- format
@dataclasses.dataclass
class FormatCheck:
    """Result of :func:`check_format`.

    Attributes:
        ok: the completion has the required format.
        reason: why not (empty when ``ok``), e.g. ``"2 boxes in <answer> (at most 1)"``.
        thinking: text inside ``<think>`` (stripped).
        answer: the answer text without box markers (stripped).
        boxed: contents of the box spans inside ``<answer>`` (stripped).
    """

    ok: bool
    reason: str = ""
    thinking: str = ""
    answer: str = ""
    boxed: list[str] = dataclasses.field(default_factory=list)


_FORMAT_RE = re.compile(
    r"\s*" + re.escape(THINK_OPEN) + r"(.*?)" + re.escape(THINK_CLOSE) + r"\s*"
    + re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE) + r"\s*",
    re.DOTALL,
)


def completion_text(completion: Any) -> str:
    """Text of one completion: a string, or TRL's conversational ``[{"content": …}]``.

    >>> completion_text([{"role": "assistant", "content": "<answer>4</answer>"}])
    '<answer>4</answer>'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts = []
        for msg in completion:
            content = msg.get("content", "") if isinstance(msg, dict) else msg
            if isinstance(content, list):
                content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
            parts.append(str(content))
        return "".join(parts[-1:])
    return str(completion)


def _strip_trailing_control(text: str) -> str:
    """Drop trailing whitespace and control tokens (eos, the next role token, padding)."""
    prev = None
    while prev != text:
        prev = text
        text = text.rstrip()
        for t in CONTROL_TOKENS:
            if text.endswith(t):
                text = text[: -len(t)]
    return text


def check_format(text: str, *, require_box: bool = False) -> FormatCheck:
    """Check the ``<think>…</think><answer>…</answer>`` format of one completion.

    Args:
        text: a completion decoded with special tokens kept.
        require_box: exactly one box must be in ``<answer>`` (else at most one).

    Returns:
        A :class:`FormatCheck`; never raises.

    >>> ok = "<think>2+2</think><answer><|begin_of_box|>4<|end_of_box|></answer><|user|>"
    >>> check_format(ok, require_box=True).boxed
    ['4']
    >>> check_format("<think>2+2</think>4").reason
    'missing <answer>'
    >>> check_format("<think>a</think><answer>1</answer>", require_box=True).reason
    'no box in <answer>'
    """
    t = _strip_trailing_control(text)
    for tok in CONTROL_TOKENS:
        if tok in t:
            return FormatCheck(False, f"control token {tok} inside the completion")
    for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE):
        n = t.count(tag)
        if n == 0:
            return FormatCheck(False, f"missing {tag}")
        if n > 1:
            return FormatCheck(False, f"{n} × {tag} (exactly 1 allowed)")
    m = _FORMAT_RE.fullmatch(t)
    if m is None:
        return FormatCheck(False, "tags out of order or text outside <think>/<answer>")
    thinking, answer = m.group(1), m.group(2)
    if BOX_OPEN in thinking or BOX_CLOSE in thinking:
        return FormatCheck(False, "box outside <answer>")
    n_open, n_close = answer.count(BOX_OPEN), answer.count(BOX_CLOSE)
    markers = re.findall(re.escape(BOX_OPEN) + "|" + re.escape(BOX_CLOSE), answer)
    if n_open != n_close or any(
        mk != (BOX_OPEN if i % 2 == 0 else BOX_CLOSE) for i, mk in enumerate(markers)
    ):
        return FormatCheck(False, "unbalanced box markers")
    if n_open > 1:
        return FormatCheck(False, f"{n_open} boxes in <answer> (at most 1)")
    if require_box and n_open == 0:
        return FormatCheck(False, "no box in <answer>")
    p = parse(t)
    return FormatCheck(True, "", p.thinking, p.answer.strip(), list(p.boxed))


def _require_box(extract: str, require_box: bool | None) -> bool:
    if extract not in EXTRACT_MODES:
        raise ConfigError(f"`extract` must be box or box_or_answer (got {extract!r}).")
    return (extract == "box") if require_box is None else bool(require_box)


def extract_answer(text: str, *, extract: str = "box", require_box: bool | None = None) -> str | None:
    """The answer to score, or ``None`` (format failure, or no box with ``extract="box"``).

    >>> extract_answer("<think>t</think><answer>so <|begin_of_box|>12<|end_of_box|></answer>")
    '12'
    >>> extract_answer("<think>t</think><answer>12</answer>") is None
    True
    >>> extract_answer("<think>t</think><answer>12</answer>", extract="box_or_answer")
    '12'
    """
    fc = check_format(completion_text(text), require_box=_require_box(extract, require_box))
    if not fc.ok:
        return None
    if fc.boxed:
        return fc.boxed[0]
    return fc.answer if extract == "box_or_answer" else None


def reference_text(ref: Any) -> str:
    """A reference answer as text; a full GLM response (tags/box) is reduced to its box.

    >>> reference_text("<answer><|begin_of_box|>7<|end_of_box|></answer>"), reference_text(3)
    ('7', '3')
    """
    if ref is None:
        return ""
    if isinstance(ref, (list, tuple)):
        return str(list(ref))
    s = str(ref)
    if any(t in s for t in (BOX_OPEN, ANSWER_OPEN, THINK_CLOSE)):
        p = parse(s)
        return p.boxed[0] if p.boxed else p.answer.strip()
    return s.strip()


# ----------------------------------------------------------------------------- text
_LATEX_WRAPPERS = re.compile(
    r"\\(?:text|textbf|textit|textrm|texttt|mathrm|mathbf|mathit|mbox|operatorname|boxed)\s*\{([^{}]*)\}"
)
_LATEX_SPACES = re.compile(r"\\[,;:! ]|~|\\quad|\\qquad")


def _unwrap_latex(s: str) -> str:
    prev = None
    while prev != s:
        prev = s
        s = _LATEX_WRAPPERS.sub(r"\1", s)
    return s


def normalize_text(s: str) -> str:
    """Normalise for exact comparison: NFKC, LaTeX ``\\text{}``-style wrappers and ``$`` removed,
    lower case, punctuation dropped (kept between digits and as a leading minus sign),
    whitespace collapsed.

    >>> normalize_text("  The \\\\text{Eiffel}  Tower!")
    'the eiffel tower'
    >>> normalize_text("$-3.5$"), normalize_text("(B)")
    ('-3.5', 'b')
    """
    s = unicodedata.normalize("NFKC", str(s))
    s = _unwrap_latex(s)
    s = s.replace("\\(", " ").replace("\\)", " ").replace("\\[", " ").replace("\\]", " ")
    s = _LATEX_SPACES.sub(" ", s).replace("$", " ").lower()
    out = []
    for i, c in enumerate(s):
        if unicodedata.category(c).startswith("P"):
            prev = s[i - 1] if i > 0 else ""
            nxt = s[i + 1] if i + 1 < len(s) else ""
            if prev.isdigit() and nxt.isdigit():
                out.append(c)
                continue
            if c == "-" and nxt.isdigit() and not prev.isalnum():
                out.append(c)
                continue
            out.append(" ")
        else:
            out.append(c)
    return " ".join("".join(out).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (unit costs), O(len(a)·len(b)) with numpy rows.

    Insertions along a row are resolved with a running minimum:
    ``D[i,j] = j + min_{k<=j}(T[k] - k)`` where ``T`` holds substitution/deletion costs.

    >>> edit_distance("kitten", "sitting")
    3
    """
    import numpy as np

    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    cols = np.arange(len(b) + 1)
    row = cols.copy()
    for i, ch in enumerate(a, start=1):
        cost = (bb != ord(ch)).astype(np.int64)
        t = np.empty_like(row)
        t[0] = i
        t[1:] = np.minimum(row[:-1] + cost, row[1:] + 1)
        row = cols + np.minimum.accumulate(t - cols)
    return int(row[-1])


def edit_similarity(pred: str, ref: str, *, case_sensitive: bool = False) -> float:
    """OCR score: ``1 − edit_distance / max(len)`` after whitespace collapse, in [0, 1].

    >>> edit_similarity("Hello world", "hello  world")
    1.0
    >>> round(edit_similarity("abcd", "abcf"), 2)
    0.75
    """
    a = " ".join(unicodedata.normalize("NFKC", pred).split())
    b = " ".join(unicodedata.normalize("NFKC", ref).split())
    if not case_sensitive:
        a, b = a.lower(), b.lower()
    if not a and not b:
        return 1.0
    return 1.0 - edit_distance(a, b) / max(len(a), len(b))


# ----------------------------------------------------------------------------- numbers
_PLAIN_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_FRACTION = re.compile(r"([-+]?\d+)\s*/\s*(\d+)")


def _clean_math(s: str) -> str:
    s = unicodedata.normalize("NFKC", str(s)).strip()
    s = _unwrap_latex(s)
    s = _LATEX_SPACES.sub("", s)
    s = s.replace("$", "").replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.strip().rstrip(".").strip()
    return s


def parse_number(s: str) -> float | None:
    """A plain number: decimal, scientific, ``1,000``, ``a/b``, trailing ``%`` dropped.

    >>> parse_number("1,000.5"), parse_number("3/4"), parse_number("50%"), parse_number("2x")
    (1000.5, 0.75, 50.0, None)
    """
    t = _clean_math(s).replace(" ", "").replace("\\%", "%").rstrip("%")
    if _THOUSANDS.fullmatch(t):
        t = t.replace(",", "")
    if _PLAIN_NUM.fullmatch(t.lower()):
        try:
            v = float(t)
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    m = _FRACTION.fullmatch(t)
    if m and int(m.group(2)) != 0:
        return int(m.group(1)) / int(m.group(2))
    return None


def _close(a: complex | float, b: complex | float, rel_tol: float) -> bool:
    if a == b:
        return True
    return abs(a - b) <= rel_tol * max(abs(a), abs(b)) + 1e-12


class _Timeout(Exception):
    pass


def _limited(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` under a SIGALRM timer (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return fn()

    def handler(signum, frame):  # noqa: ARG001
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@functools.lru_cache(maxsize=8192)
def _to_sympy(s: str, timeout_s: float) -> Any:
    """Whole-string LaTeX/plain-math parse with latex2sympy2_extended (math-verify's parser).

    No free-text extraction (math-verify's ``parse`` would pick "5" out of "4 or 5"),
    no ``eval``. Returns a SymPy object, or ``None`` when it does not parse.
    """
    from latex2sympy2_extended import NormalizationConfig, latex2sympy

    cfg = NormalizationConfig(basic_latex=True, units=False, malformed_operators=True,
                              nits=False, boxed="all", equations=False)
    try:
        return _limited(lambda: latex2sympy(s, normalization_config=cfg), timeout_s)
    except (_Timeout, Exception):  # latex2sympy raises plain Exception on bad input
        return None


_HEAVY = re.compile(r"\\(?:sum|prod|int|iint|oint|lim|binom|dbinom|tbinom|choose)|!!|\\over")
_DIGITS = re.compile(r"\d+")


def _exponents(s: str) -> list[str]:
    """Texts of every exponent: ``^{…}`` (balanced) or ``^x`` (one token)."""
    out = []
    for m in re.finditer(r"\^", s):
        j = m.end()
        while j < len(s) and s[j] == " ":
            j += 1
        if j < len(s) and s[j] == "{":
            depth, k = 0, j
            while k < len(s):
                depth += {"{": 1, "}": -1}.get(s[k], 0)
                if depth == 0:
                    break
                k += 1
            out.append(s[j + 1:k])
        else:
            t = re.match(r"\\?[A-Za-z]+|\d+|.", s[j:])
            out.append(t.group(0) if t else "")
    return out


def safe_for_sympy(s: str) -> bool:
    """Whether a *model-written* expression is cheap to hand to SymPy.

    Big-integer powers and factorials run in C and cannot be interrupted by a timer,
    so they are refused up front: nested or long exponents (a digit run of more than
    3 digits or more than 2 runs), factorials of more than 3 digits, sums/products/
    integrals/limits/binomials, digit runs over 100 digits.

    >>> safe_for_sympy("2^{10}"), safe_for_sympy("9^{9^{9}}"), safe_for_sympy("10^{100000}")
    (True, False, False)
    """
    if _HEAVY.search(s) or s.count("^") > 3:
        return False
    if any(len(d) > 100 for d in _DIGITS.findall(s)):
        return False
    if any(len(d) > 3 for d in re.findall(r"(\d+)\s*!", s)) or re.search(r"\}\s*!|\)\s*!", s):
        return False
    for e in _exponents(s):
        runs = _DIGITS.findall(e)
        if "^" in e or "!" in e or len(runs) > 2 or any(len(d) > 3 for d in runs):
            return False
    return True


def _is_closed_form(expr: Any) -> bool:
    import sympy

    return isinstance(expr, sympy.Expr) and not expr.free_symbols


def _sympy_equal(pred: str, ref: str, rel_tol: float, timeout_s: float) -> bool:
    a, b = _to_sympy(pred, timeout_s), _to_sympy(ref, timeout_s)
    if a is None or b is None:
        return False
    try:
        if _is_closed_form(a) and _is_closed_form(b):
            va, vb = complex(a.evalf(30)), complex(b.evalf(30))
            return _close(va, vb, rel_tol)
        from math_verify import verify as mv_verify

        if threading.current_thread() is threading.main_thread():
            return bool(mv_verify(b, a, timeout_seconds=max(1, math.ceil(timeout_s))))
        return bool(mv_verify(b, a, timeout_seconds=None))  # signals need the main thread
    except (_Timeout, Exception):
        return False


def math_equal(pred: str, ref: str, *, rel_tol: float = 1e-5, max_expr_chars: int = 200,
               sympy_timeout_s: float = 2.0) -> bool:
    """The GLM chain: normalised exact match → plain numbers within ``rel_tol`` → SymPy.

    >>> math_equal("0.5", "1/2"), math_equal("\\\\frac{1}{2}", "0.5"), math_equal("4 or 5", "4")
    (True, True, False)
    >>> math_equal("3.000001", "3"), math_equal("3.1", "3")
    (True, False)
    """
    p, r = _clean_math(pred), _clean_math(ref)
    if not p or not r:
        return False
    if normalize_text(p) == normalize_text(r) and normalize_text(p):
        return True
    a, b = parse_number(p), parse_number(r)
    if a is not None and b is not None:
        return _close(a, b, rel_tol)
    if len(p) > max_expr_chars or len(r) > 4 * max_expr_chars or not safe_for_sympy(p):
        return False
    return _sympy_equal(p, r, rel_tol, sympy_timeout_s)


# ----------------------------------------------------------------------------- choice / count
_CHOICE_PREFIX = re.compile(
    r"^(?:the\s+)?(?:correct\s+)?(?:final\s+)?(?:answer|option|choice)\s*(?:is)?\s*[:：]?\s*", re.I
)
_CHOICE_PATTERNS = (
    re.compile(r"\(?([A-Za-z])\)?"),                   # B, (B), b
    re.compile(r"\(([A-Za-z])\)\s*\S.*", re.S),        # (B) text
    re.compile(r"([A-Za-z])\s*[.:)]\s*(?:\S.*)?", re.S),  # B. text, B) text, B: text, B.
)
_OTHER_OPTION = re.compile(r"\([A-Z]\)|(?:^|\s)[A-Z][.)](?:\s|$)")


def parse_choice(s: str) -> str | None:
    """The option letter of a multiple-choice answer, upper case; ``None`` if not exactly one.

    >>> [parse_choice(x) for x in ("(B)", "B.", "b", "B) 42 apples", "Answer: C", "A, B", "AB")]
    ['B', 'B', 'B', 'B', 'C', None, None]
    """
    t = _unwrap_latex(unicodedata.normalize("NFKC", str(s))).replace("$", "").strip()
    t = _CHOICE_PREFIX.sub("", t).strip()
    for i, pat in enumerate(_CHOICE_PATTERNS):
        m = pat.fullmatch(t)
        if m:
            rest = t[m.end(1):]
            if i > 0 and _OTHER_OPTION.search(rest):
                return None  # "B. or (C)": more than one option named
            return m.group(1).upper()
    return None


_NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
                      "eighty": 80, "ninety": 90, "hundred": 100, "none": 0, "no": 0})
_TENS = {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}


def parse_count(s: str, *, words: bool = True) -> int | None:
    """The one non-negative integer in a counting answer; ``None`` if zero or several.

    >>> [parse_count(x) for x in ("3", "three", "There are 3 apples.", "twenty-one", "3 or 4", "2.5")]
    [3, 3, 3, 21, None, None]
    >>> parse_count("three", words=False) is None
    True
    """
    t = _clean_math(s).lower()
    nums = re.findall(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?![\w.]*\d)", t)
    found: list[int] = []
    for n in nums:
        v = float(n.replace(",", ""))
        if v < 0 or v != int(v):
            return None
        found.append(int(v))
    if re.search(r"\d", re.sub(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?", " ", t)):
        return None  # digits glued to letters ("3x4"): not a clean count
    if words:
        toks = re.findall(r"[a-z]+", t)
        i = 0
        while i < len(toks):
            w = toks[i]
            if w in _NUMBER_WORDS and not (w in ("no", "none") and (nums or len(toks) > 2)):
                v = _NUMBER_WORDS[w]
                if w in _TENS and i + 1 < len(toks) and toks[i + 1] in _NUMBER_WORDS \
                        and 0 < _NUMBER_WORDS[toks[i + 1]] < 10:
                    v += _NUMBER_WORDS[toks[i + 1]]
                    i += 1
                found.append(v)
            i += 1
    return found[0] if len(found) == 1 else None


# ----------------------------------------------------------------------------- grounding
def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (any scale; corners in any order).

    >>> box_iou(Box(0, 0, 100, 100), Box(50, 0, 150, 100))
    0.3333333333333333
    """
    ax1, ax2 = sorted((a.x1, a.x2))
    ay1, ay2 = sorted((a.y1, a.y2))
    bx1, bx2 = sorted((b.x1, b.x2))
    by1, by2 = sorted((b.y1, b.y2))
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def _clamp_box(b: Box) -> Box:
    c = lambda v: min(max(v, 0.0), 1000.0)  # noqa: E731
    return Box(c(b.x1), c(b.y1), c(b.x2), c(b.y2))


MAX_BOXES = 50


def grounding_score(pred_boxes: Sequence[Box], ref_boxes: Sequence[Box], *,
                    iou_threshold: float | None = None) -> float:
    """Match predicted to reference boxes (Hungarian, max IoU) and score the matching.

    Score = Σ matched score / max(#pred, #ref): extra or missing boxes lower it, so
    listing many boxes does not pay. Per pair the score is the IoU, or 1.0 when
    IoU ≥ ``iou_threshold``. More than :data:`MAX_BOXES` predicted boxes score 0.

    >>> grounding_score([Box(0, 0, 100, 100)], [Box(0, 0, 100, 100)])
    1.0
    >>> grounding_score([Box(0, 0, 100, 100), Box(500, 500, 600, 600)], [Box(0, 0, 100, 100)])
    0.5
    """
    if not pred_boxes or not ref_boxes or len(pred_boxes) > MAX_BOXES:
        return 0.0
    import numpy as np

    P = [_clamp_box(b) for b in pred_boxes]
    R = [_clamp_box(b) for b in ref_boxes]
    iou = np.array([[box_iou(p, r) for r in R] for p in P])
    if len(P) == 1 or len(R) == 1:  # one pair at most: the best IoU
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        pairs = [(int(i), int(j))]
    else:
        pairs = _assign(iou)
    scores = [iou[i, j] if iou_threshold is None else float(iou[i, j] >= iou_threshold)
              for i, j in pairs]
    return float(sum(scores) / max(len(P), len(R)))


def _assign(iou: Any) -> list[tuple[int, int]]:
    """Max-IoU one-to-one matching (SciPy's Hungarian solver; greedy without SciPy)."""
    import numpy as np

    try:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-iou)
        pairs = list(zip(rows.tolist(), cols.tolist()))
    except ImportError:  # greedy fallback
        pairs, used_r, used_p = [], set(), set()
        for flat in np.argsort(-iou, axis=None):
            i, j = divmod(int(flat), iou.shape[1])
            if i not in used_p and j not in used_r:
                pairs.append((i, j))
                used_p.add(i)
                used_r.add(j)
    return pairs


def _to_thousandths(boxes: list[Box], image_size: Any) -> list[Box] | None:
    try:
        w, h = (float(v) for v in image_size)
    except (TypeError, ValueError):
        return None
    if w <= 0 or h <= 0:
        return None
    return [Box(b.x1 / w * 1000, b.y1 / h * 1000, b.x2 / w * 1000, b.y2 / h * 1000) for b in boxes]


# ----------------------------------------------------------------------------- verify
def verify(pred: str, ref: Any, task_type: str = "math", *, image_size: Any = None,
           **settings: Any) -> float:
    """Score one extracted prediction against one reference (no format gate, no bonus).

    Args:
        pred: the extracted answer (see :func:`extract_answer`).
        ref: the reference answer (a string; numbers/lists are converted).
        task_type: one of :data:`TASK_TYPES` or an alias.
        image_size: ``[w, h]`` of the image, for grounding with ``ref_box_scale="pixels"``.
        **settings: :class:`RewardConfig` fields (``rel_tol``, ``iou_threshold``…).

    Returns:
        A float in [0, 1].

    Raises:
        DataError: unknown task type.

    >>> verify("(b)", "B", "choice"), verify("3", "three", "counting"), verify("x", "y", "exact")
    (1.0, 1.0, 0.0)
    """
    cfg = {**_DEFAULTS, **{k: v for k, v in settings.items() if k in _DEFAULTS}}
    tt = canonical_task_type(task_type)
    if tt is None:
        raise DataError(f"Unknown task_type {task_type!r}; valid task types: {', '.join(TASK_TYPES)}.")
    r = reference_text(ref)
    if pred is None or not r:
        return 0.0
    if tt in ("math", "numeric"):
        return float(math_equal(pred, r, rel_tol=cfg["rel_tol"], max_expr_chars=cfg["max_expr_chars"],
                                sympy_timeout_s=cfg["sympy_timeout_s"]))
    if tt == "exact":
        n = normalize_text(pred)
        return float(bool(n) and n == normalize_text(r))
    if tt == "choice":
        a, b = parse_choice(pred), parse_choice(r)
        return float(a is not None and a == b)
    if tt == "counting":
        a, b = parse_count(pred, words=cfg["count_words"]), parse_count(r, words=True)
        return float(a is not None and a == b)
    if tt == "ocr":
        return edit_similarity(pred, r, case_sensitive=cfg["ocr_case_sensitive"])
    # grounding
    ref_boxes = parse_boxes(r)
    if cfg["ref_box_scale"] == "pixels":
        ref_boxes = _to_thousandths(ref_boxes, image_size) or []
    return grounding_score(parse_boxes(pred), ref_boxes, iou_threshold=cfg["iou_threshold"])


def row_task_type(task_type: Any, answer: Any, choices: Any = None) -> str:
    """The task type to score a data row with: ``"exact"`` when a multiple-choice row's
    answer is a *word* among its ``choices`` ("left"/"right", "red circle"), since the
    ``choice`` verifier compares option letters; otherwise ``task_type`` unchanged (empty
    → ``"math"``). Used by the RL data loader and ``studio eval`` so both score alike.

    >>> row_task_type("choice", "left", ["left", "right"]), row_task_type("mc", "B", ["A", "B"])
    ('exact', 'mc')
    """
    tt = str(task_type or "math")
    if (canonical_task_type(tt) == "choice" and isinstance(choices, list)
            and check_reference(answer, "choice") is not None
            and str(answer).strip() in [str(c).strip() for c in choices]):
        return "exact"
    return tt


def check_reference(answer: Any, task_type: str | None = "math") -> str | None:
    """Whether a dataset's reference answer can be scored by the task type's verifier.

    Returns ``None`` when it can, else one sentence for the data doctor.

    >>> check_reference("abc", "numeric")
    "reference 'abc' is not a number"
    >>> check_reference("1/2", "numeric") is None, check_reference("[1,2,3,4]", "grounding") is None
    (True, True)
    """
    tt = canonical_task_type(task_type if task_type not in (None, "") else "math")
    if tt is None:
        return f"unknown task_type {task_type!r} (valid: {', '.join(TASK_TYPES)})"
    r = reference_text(answer)
    if not r:
        return "reference answer is empty"
    if tt == "math":
        return None if normalize_text(r) or _clean_math(r) else f"reference {r!r} has no content"
    if tt == "numeric":
        if parse_number(r) is not None:
            return None
        e = _to_sympy(_clean_math(r), _DEFAULTS["sympy_timeout_s"])
        return None if e is not None and _is_closed_form(e) else f"reference {r!r} is not a number"
    if tt == "exact":
        return None if normalize_text(r) else f"reference {r!r} is empty after normalisation"
    if tt == "choice":
        return None if parse_choice(r) else f"reference {r!r} is not a choice letter (A, B, C…)"
    if tt == "counting":
        return None if parse_count(r) is not None else f"reference {r!r} is not a whole number"
    if tt == "ocr":
        return None
    boxes = parse_boxes(r)
    if not boxes:
        return f"reference {r!r} has no [x1,y1,x2,y2] box"
    if any(min(b.x1, b.y1, b.x2, b.y2) < 0 for b in boxes):
        return f"reference {r!r} has negative box coordinates"
    if any(b.x1 == b.x2 or b.y1 == b.y2 for b in boxes):
        return f"reference {r!r} has an empty box (zero width or height)"
    return None


# ----------------------------------------------------------------------------- reward fns
def _column(kwargs: dict, name: str, n: int, default: Any = None) -> list:
    v = kwargs.get(name, default)
    if isinstance(v, (list, tuple)) and not (name == "image_size" and len(v) == 2
                                             and all(isinstance(x, (int, float)) for x in v)):
        if len(v) != n:
            raise DataError(f"Column `{name}` has {len(v)} values for {n} completions.")
        return list(v)
    return [v] * n


def _split(kwargs: dict) -> tuple[dict, dict]:
    settings = {k: kwargs[k] for k in _DEFAULTS if k in kwargs}
    return {**_DEFAULTS, **settings}, kwargs


def _score(completions: Sequence[Any], forced_task: str | None, kwargs: dict) -> list[float]:
    cfg, cols = _split(kwargs)
    n = len(completions)
    if "answer" not in cols:
        raise DataError("The dataset has no `answer` column: every RL prompt needs a reference answer.")
    answers = _column(cols, "answer", n)
    types = [forced_task] * n if forced_task else _column(cols, "task_type", n)
    sizes = _column(cols, "image_size", n)
    need_box = _require_box(cfg["extract"], cfg["require_box"])
    out = []
    for c, ref, tt, size in zip(completions, answers, types, sizes):
        fc = check_format(completion_text(c), require_box=need_box)
        if not fc.ok:
            out.append(0.0)
            continue
        pred = fc.boxed[0] if fc.boxed else (fc.answer if cfg["extract"] == "box_or_answer" else None)
        tt = tt if tt not in (None, "") else cfg["default_task_type"]
        score = verify(pred, ref, tt, image_size=size, **cfg) if pred is not None else 0.0
        out.append(float(score) + float(cfg["format_bonus"]))
    return out


def accuracy(completions: list, **kwargs: Any) -> list[float]:
    """Main reward: format gate, then the verifier named by each row's ``task_type``.

    >>> c = ["<think>half</think><answer><|begin_of_box|>\\\\frac{1}{2}<|end_of_box|></answer>",
    ...      "<think>hmm</think><answer><|begin_of_box|>B<|end_of_box|></answer>",
    ...      "<|begin_of_box|>0.5<|end_of_box|>"]
    >>> accuracy(c, answer=["0.5", "(B)", "0.5"], task_type=["math", "choice", "math"])
    [1.0, 1.0, 0.0]
    """
    return _score(completions, None, kwargs)


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 when the format is right (see :func:`check_format`), else 0.0. For logging.

    >>> format_reward(["<think>a</think><answer><|begin_of_box|>1<|end_of_box|></answer>",
    ...                "<think>a</think><answer>1</answer>"])
    [1.0, 0.0]
    >>> format_reward(["<think>a</think><answer>1</answer>"], extract="box_or_answer")
    [1.0]
    """
    cfg, _ = _split(kwargs)
    need_box = _require_box(cfg["extract"], cfg["require_box"])
    return [float(check_format(completion_text(c), require_box=need_box).ok) for c in completions]


def _wrap(body: str) -> str:
    return f"<think>t</think><answer>{BOX_OPEN}{body}{BOX_CLOSE}</answer>"


def math_reward(completions: list, **kwargs: Any) -> list[float]:
    """Exact/normalised → numeric (``rel_tol``) → SymPy, for every row.

    >>> math_reward([_wrap("2\\\\sqrt{2}"), _wrap("2.83")], answer="\\\\sqrt{8}")
    [1.0, 0.0]
    """
    return _score(completions, "math", kwargs)


def numeric_reward(completions: list, **kwargs: Any) -> list[float]:
    """Like ``math``; the data doctor additionally requires numeric references.

    >>> numeric_reward([_wrap("1,000"), _wrap("999.9")], answer="1000")
    [1.0, 0.0]
    """
    return _score(completions, "numeric", kwargs)


def exact_reward(completions: list, **kwargs: Any) -> list[float]:
    """Normalised string equality (case, spaces, punctuation, ``\\text{}`` ignored).

    >>> exact_reward([_wrap("\\\\text{Paris.}"), _wrap("Lyon")], answer="paris")
    [1.0, 0.0]
    """
    return _score(completions, "exact", kwargs)


def choice_reward(completions: list, **kwargs: Any) -> list[float]:
    """Multiple-choice letter.

    >>> choice_reward([_wrap("(C)"), _wrap("C or D")], answer="C")
    [1.0, 0.0]
    """
    return _score(completions, "choice", kwargs)


def counting_reward(completions: list, **kwargs: Any) -> list[float]:
    """Integer count (digits or number words).

    >>> counting_reward([_wrap("seven"), _wrap("7 or 8")], answer="7")
    [1.0, 0.0]
    """
    return _score(completions, "counting", kwargs)


def ocr_reward(completions: list, **kwargs: Any) -> list[float]:
    """1 − normalised edit distance.

    >>> ocr_reward([_wrap("Hello World"), _wrap("Hellp World")], answer="hello world")
    [1.0, 0.9090909090909091]
    """
    return _score(completions, "ocr", kwargs)


def grounding_reward(completions: list, **kwargs: Any) -> list[float]:
    """IoU with the reference box(es), 0–1000 scale (or 1/0 at ``iou_threshold``).

    >>> grounding_reward([_wrap("[0,0,100,100]"), _wrap("[50,0,150,100]")], answer="[0,0,100,100]")
    [1.0, 0.3333333333333333]
    >>> grounding_reward([_wrap("[50,0,150,100]")], answer="[0,0,100,100]", iou_threshold=0.3)
    [1.0]
    """
    return _score(completions, "grounding", kwargs)


#: Reward functions by name (TRL signature).
REGISTRY: dict[str, RewardFn] = {
    "accuracy": accuracy,
    "format": format_reward,
    "math": math_reward,
    "numeric": numeric_reward,
    "exact": exact_reward,
    "choice": choice_reward,
    "counting": counting_reward,
    "ocr": ocr_reward,
    "grounding": grounding_reward,
}


def get_reward(name: str, **settings: Any) -> RewardFn:
    """The reward function registered as ``name``, with ``settings`` bound.

    The returned function keeps TRL's signature and has ``__name__ == name`` (TRL logs
    ``rewards/<name>/mean``). Settings given at call time override bound ones.

    Raises:
        ConfigError: unknown name (the message lists the valid names) or setting.

    >>> get_reward("format").__name__
    'format'
    >>> get_reward("acuracy")
    Traceback (most recent call last):
    ...
    studio.errors.ConfigError: Unknown reward function 'acuracy'; valid names: accuracy, format, math, numeric, exact, choice, counting, ocr, grounding.
    """
    if name not in REGISTRY:
        raise ConfigError(f"Unknown reward function {name!r}; valid names: {', '.join(REGISTRY)}.")
    unknown = sorted(set(settings) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"Unknown reward setting(s) {', '.join(unknown)}; valid: {', '.join(_DEFAULTS)}.")
    base = REGISTRY[name]
    if not settings:
        fn = functools.wraps(base)(lambda completions, **kw: base(completions, **kw))
    else:
        def fn(completions: list, **kwargs: Any) -> list[float]:
            return base(completions, **{**settings, **kwargs})
        functools.update_wrapper(fn, base)
    fn.__name__ = fn.__qualname__ = name
    return fn


def build_reward_funcs(cfg: RewardConfig) -> list[RewardFn]:
    """One bound function per name in ``cfg.functions`` (validates ``cfg`` first).

    >>> [f.__name__ for f in build_reward_funcs(RewardConfig(functions=["accuracy", "format"]))]
    ['accuracy', 'format']
    """
    cfg.validate()
    return [get_reward(n, **cfg.settings()) for n in cfg.functions]
