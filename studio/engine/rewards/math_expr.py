"""Math answers: number grammar first, then expressions, intervals, sets and tuples by SymPy.

Chain (:func:`math_equal`), each step a grammar with its own comparison:

1. both sides are numbers (:mod:`~studio.engine.rewards.numeric`) → :func:`numbers_equal`;
2. either side is prose (no digit, operator or command: ``Tokyo``) → text equality only —
   free text is never parsed as algebra (latex2sympy would read ``Kyoto`` as the product
   K·y·o·t·o, equal to ``Tokyo``);
3. the math forms (:func:`~studio.engine.rewards.text.clean_math`: layout removed, every
   sign, decimal point, operator and bracket kept) are identical → equal;
4. otherwise, within the caps (``max_expr_chars``, :func:`safe_for_sympy`), SymPy in a
   time-limited worker process (:mod:`~studio.engine.rewards.sandbox`).

Differences from GLM's reward code and Math-Verify, on purpose: no normalised-string
shortcut that drops punctuation (it made ``-x`` = ``x``); no float conversion of closed
forms (``10^{999}`` became ``inf`` and matched everything); no free-text extraction
(Math-Verify's ``parse`` takes the last number of "4 or 5").
"""

from __future__ import annotations

import re

from studio.engine.rewards import sandbox
from studio.engine.rewards.numeric import numbers_equal, parse_quantity
from studio.engine.rewards.text import clean_math, looks_like_math, normalize_text

_HEAVY = re.compile(r"\\(?:sum|prod|int|iint|iiint|oint|lim|binom|dbinom|tbinom|choose|over|Gamma|zeta)(?![A-Za-z])"
                    r"|!!|\*\*|\bgamma\b|\bfactorial\b")
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

    Big-integer powers and factorials run in C and ignore timers, so they are refused up
    front: nested or long exponents (a digit run of more than 3 digits, more than 2 runs),
    factorials of more than 3 digits or of brackets, sums/products/integrals/limits/
    binomials/Gamma, Python's ``**``, digit runs over 100 digits, more than 3 ``^``.

    >>> safe_for_sympy("2^{10}"), safe_for_sympy("9^{9^{9}}"), safe_for_sympy("10^{100000}")
    (True, False, False)
    """
    if _HEAVY.search(s) or s.count("^") > 3:
        return False
    if any(len(d) > 100 for d in _DIGITS.findall(s)):
        return False
    if any(len(d) > 3 for d in re.findall(r"(\d+)\s*!", s)) or re.search(r"[})\]]\s*!", s):
        return False
    for e in _exponents(s):
        runs = _DIGITS.findall(e)
        if "^" in e or "!" in e or len(runs) > 2 or any(len(d) > 3 for d in runs):
            return False
    return True


_SPACED_DIGITS = re.compile(r"\d \d")


def math_equal(pred: str, ref: str, *, rel_tol: float = 1e-5, max_expr_chars: int = 200,
               sympy_timeout_s: float = 0.5) -> bool:
    """Is ``pred`` the same mathematical answer as ``ref``? (chain in the module doc)

    >>> math_equal("0.5", "1/2"), math_equal("\\\\frac{1}{2}", "0.5"), math_equal("4 or 5", "4")
    (True, True, False)
    >>> math_equal("-x", "x"), math_equal(".5", "5"), math_equal("Kyoto", "Tokyo"), math_equal("4²", "42")
    (False, False, False, False)
    """
    if not str(pred).strip() or not str(ref).strip() or len(str(pred)) > 4 * max_expr_chars + 100:
        return False
    qp, qr = parse_quantity(pred), parse_quantity(ref)
    if qp is not None and qr is not None:
        return numbers_equal(qp, qr, rel_tol)
    if not looks_like_math(pred) or not looks_like_math(ref):
        a, b = normalize_text(pred), normalize_text(ref)
        if len(a) == 1 and len(b) == 1:  # one letter is a variable: case matters (x ≠ X)
            return clean_math(pred) == clean_math(ref)
        return bool(a) and a == b
    p, r = clean_math(pred), clean_math(ref)
    if not p or not r:
        return False
    if p == r:
        return True
    if len(p) > max_expr_chars or len(r) > 4 * max_expr_chars or not safe_for_sympy(p):
        return False
    if _SPACED_DIGITS.search(p):  # "3 4": not a number we can read
        return False
    return bool(sandbox.sympy_equal(p, r, rel_tol=rel_tol, timeout_s=sympy_timeout_s))
