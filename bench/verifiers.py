"""Worst-case inputs for the answer verifiers: prints the slowest single verification.

Every reward is computed inside a training step, so one slow verification stalls a run.
This runs adversarial answers (huge numbers, towers of powers, factorials, long and
nested expressions, symbolic identities SymPy finds hard, 100 KB OCR pages, thousands of
boxes, long free text) through :func:`studio.engine.rewards.verify`, from the main thread
and from a worker thread, and prints the time of each and the slowest one. The issue's
bound is 1 s on 2 CPU cores. The SymPy worker process is started (and timed) first: that
cost is paid once per training process, at setup.

    python bench/verifiers.py                 # full size (100 KB OCR pages)
    python bench/verifiers.py --size small    # smoke size (used by the test suite)
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.engine import rewards as R  # noqa: E402


def cases(size: str) -> list[tuple[str, str, str, str]]:
    """(label, task_type, prediction, reference)."""
    n = {"small": 2_000, "full": 100_000}[size]
    rng = random.Random(0)
    page = lambda: "".join(rng.choice("abcdefghij klmnopqrstuvwxyz.,") for _ in range(n))  # noqa: E731
    poly = "+".join(f"{rng.randint(1, 9)}x^{{{k}}}" for k in range(1, 40))
    return [
        ("ocr page vs page", "ocr", page(), page()),
        ("ocr page vs short", "ocr", page(), "hello world"),
        ("ocr 20k vs 20k", "ocr", page()[:20_000], page()[:20_000]),
        ("10^{999}", "math", "10^{999}", "42"),
        ("9^{400}", "numeric", "9^{400}", "42"),
        ("999!", "math", "999!", "42"),
        ("9^{9^{9}}", "math", "9^{9^{9}}", "42"),
        ("2^{2^{40}}", "math", "2^{2^{40}}", "4"),
        ("1e400 digits", "numeric", "1" * 390, "4"),
        ("(10^{99})^{999}", "math", "(10^{99})^{999}", "1"),
        ("x^{999}-expansion", "math", "(x+1)^{999}", "x^{999}+1"),
        ("poly identity", "math", poly, f"({poly})+0"),
        ("nested parens", "math", "(" * 90 + "x" + ")" * 90, "x"),
        ("nested fractions", "math", "\\frac{1}{" * 30 + "x" + "}" * 30, "x"),
        ("trig identity", "math", "\\sin^{2}(x)+\\cos^{2}(x)", "1"),
        ("hard simplify", "math", "\\frac{(x+1)^{20}-(x-1)^{20}}{x}", "\\frac{(x+2)^{20}}{x}"),
        ("exp tower symbolic", "math", "e^{e^{e^{x}}}", "e^{e^{e^{y}}}"),
        ("sum", "math", "\\sum_{i=1}^{10^{9}} i", "5"),
        ("integral", "math", "\\int_0^1 e^{-x^2} dx", "0.7468"),
        ("long answer to math", "math", "x+" * (n // 2) + "1", "x+1"),
        ("long interval", "math", "[" + ",".join(str(i) for i in range(60)) + ")", "[0,9)"),
        ("long set", "math", "\\{" + ",".join(f"x_{{{i}}}" for i in range(60)) + "\\}", "\\{1\\}"),
        ("long prose to math", "math", "Tokyo " * (n // 6), "Tokyo"),
        ("long text exact", "exact", "Paris " * (n // 6), "Paris"),
        ("long choice", "choice", "(A) " * (n // 4), "A"),
        ("long counting", "counting", "3 " * (n // 2), "3"),
        ("many boxes", "grounding", ",".join(f"[{i % 900},{i % 900},{i % 900 + 50},{i % 900 + 50}]"
                                              for i in range(n // 20)), "[0,0,100,100]"),
        ("50 boxes", "grounding", ",".join(f"[{i * 10},{i * 10},{i * 10 + 50},{i * 10 + 50}]"
                                           for i in range(50)), ",".join(f"[{i * 10},0,{i * 10 + 40},60]"
                                                                         for i in range(50))),
        ("infinity", "numeric", "\\infty", "42"),
        ("decimal exponent", "numeric", "1e99999", "1"),
        ("sci times", "numeric", "1.6\\times10^{-19}", "0"),
    ]


def run(size: str = "full", *, threads: bool = True) -> float:
    """Run every case (also from a worker thread); print the timings; return the slowest (s)."""
    t0 = time.perf_counter()
    ok = R.warm_up()
    print(f"SymPy worker start: {time.perf_counter() - t0:.2f} s (once per process; ready={ok})")
    slowest, worst = 0.0, ""
    for label, tt, pred, ref in cases(size):
        for where in ("main", "thread") if threads else ("main",):
            out: list[float] = []
            t = time.perf_counter()
            if where == "main":
                out.append(R.verify(pred, ref, tt))
            else:
                th = threading.Thread(target=lambda: out.append(R.verify(pred, ref, tt)))
                th.start()
                th.join()
            dt = time.perf_counter() - t
            print(f"{dt * 1000:9.1f} ms  {where:6s} {tt:9s} {label:22s} score={out[0] if out else 'ERR'}")
            if dt > slowest:
                slowest, worst = dt, f"{label} ({where})"
    print(f"slowest single verification: {slowest:.3f} s — {worst} "
          f"({'under' if slowest < 1.0 else 'OVER'} the 1 s bound); workers killed: {R.sandbox.stats()['kills']}")
    return slowest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("small", "full"), default="full")
    ap.add_argument("--no-threads", action="store_true", help="main thread only")
    args = ap.parse_args(argv)
    run(args.size, threads=not args.no_threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
