"""SymPy worker process for :mod:`studio.engine.rewards.sandbox` (run as a script).

Reads one JSON request per line on stdin and writes one JSON reply per line on stdout:

* ``{"op": "equal", "pred": str, "ref": str, "rel_tol": float, "timeout": s}`` →
  ``{"r": true|false|null}`` (``null``: a side did not parse, or time ran out);
* ``{"op": "parse", "ref": str, "timeout": s}`` → ``{"r": kind|null}`` with kind one of
  ``"number"`` (finite closed form), ``"nonfinite"``, ``"expr"`` (free symbols), ``"other"``
  (sets, intervals, tuples, relations).

Stand-alone on purpose (imports only sympy, latex2sympy2_extended and math_verify, never
the studio package or torch), so it starts in about a second. Each request runs under a
SIGALRM timer — this *is* the worker's main thread — and the parent kills the process
when even that does not return (big-integer C code ignores signals).
"""

from __future__ import annotations

import json
import signal
import sys


class _Timeout(Exception):
    pass


def _handler(signum, frame):  # noqa: ARG001
    raise _Timeout()


_CFG = None


def parse(s: str):
    """Whole-string LaTeX parse (latex2sympy2_extended, Math-Verify's parser); no free-text
    extraction: Math-Verify's ``parse`` would pick "5" out of "4 or 5"."""
    global _CFG
    from latex2sympy2_extended import NormalizationConfig, latex2sympy

    if _CFG is None:
        _CFG = NormalizationConfig(basic_latex=True, units=False, malformed_operators=False,
                                   nits=False, boxed="all", equations=False)
    return latex2sympy(s, normalization_config=_CFG)


def _nonfinite(e) -> bool:
    import sympy

    return isinstance(e, sympy.Expr) and bool(e.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan))


def closed_equal(a, b, rel_tol: float) -> bool:
    """Closed forms: an integer reference must be met exactly (to 45 digits of evaluation);
    otherwise relative tolerance on 30-digit values (SymPy floats: no overflow at 10^999)."""
    import sympy

    if a == b:
        return True
    if b.is_Integer:
        d = (a - b).evalf(60)
        return bool(d.is_number and d.is_comparable and abs(d) <= sympy.Float(10) ** -45 * max(1, abs(b)))
    va, vb = a.evalf(30), b.evalf(30)
    if not (va.is_number and vb.is_number) or not (va.is_finite and vb.is_finite):
        return False
    tol = sympy.Float(max(rel_tol, 1e-12), 30)
    return bool(abs(va - vb) <= tol * max(abs(va), abs(vb)))


def equal(pred: str, ref: str, rel_tol: float):
    import sympy

    a, b = parse(pred), parse(ref)
    if a is None or b is None:
        return None
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
        if _nonfinite(a) or _nonfinite(b):  # an infinity equals only the same infinity
            return bool(a == b and a in (sympy.oo, -sympy.oo))
        if not a.free_symbols and not b.free_symbols:
            return closed_equal(a, b, rel_tol)
    from math_verify import verify

    # sets, intervals, tuples, relations, expressions with symbols: Math-Verify's checks
    # (structure kept: [0,9) vs (0,9) differ), under our own timer
    return bool(verify(b, a, timeout_seconds=None))


def kind(ref: str):
    import sympy

    e = parse(ref)
    if e is None:
        return None
    if isinstance(e, sympy.Expr):
        if _nonfinite(e):
            return "nonfinite"
        return "expr" if e.free_symbols else "number"
    return "other"


def serve() -> None:
    signal.signal(signal.SIGALRM, _handler)
    # SymPy imports much of itself lazily (simplification, trigonometry, sets): exercise
    # each path once before saying ready, so no request pays for an import
    for pred, ref in (("\\sin^{2}(x)+\\cos^{2}(x)", "1"), ("x^{2}+2x+1", "(x+1)^{2}"), ("10^{99}", "42"),
                      ("2\\sqrt{2}", "\\sqrt{8}"), ("[0,9)", "(0,9)"), ("\\{1,2\\}", "\\{2,1\\}"),
                      ("\\frac{\\pi}{3}", "1.0471975512"), ("(1,2)", "(1,2)"), ("e^{x}", "e^{-x}")):
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        try:
            equal(pred, ref, 1e-5)
        except BaseException:  # noqa: BLE001
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        res = None
        signal.setitimer(signal.ITIMER_REAL, float(req.get("timeout", 1.0)))
        try:
            if req.get("op") == "equal":
                res = equal(req["pred"], req["ref"], float(req.get("rel_tol", 1e-5)))
            elif req.get("op") == "parse":
                res = kind(req["ref"])
        except BaseException:  # noqa: BLE001 — timeouts, parser errors, SymPy errors
            res = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps({"r": res}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
