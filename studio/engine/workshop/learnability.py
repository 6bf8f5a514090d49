"""Learnability of a slice before RL: greedy accuracy, pass@1, pass@k, and whether the right
samples follow the image.

Why: RL with a verifier can only make a model say more often what it already says
sometimes. A slice (family × level) is worth an RL recipe when pass@k is far above greedy
accuracy *and* the right samples depend on the image: asked about another image of the
same slice (the question kept, the image swapped), pass@k should fall. When it does not,
pass@k measures guessing among few options and RL learns the answer prior (measured on
v1's counting slice: pass@8 94 % vs pass@1 53 %, and RL gained only the prior; docs/FACTS.md).

pass@k uses the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", §2.1): with ``n`` samples of which ``c`` are right,
``pass@k = 1 - C(n-c, k) / C(n, k)``.
"""

from __future__ import annotations

from collections import defaultdict
from math import comb
from typing import Any, Callable

from studio.engine.workshop.evaluate import format_ok, generate_outputs, verify


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` right (Chen et al. 2021, eq. 1).

    >>> pass_at_k(8, 0, 8), pass_at_k(8, 1, 8), pass_at_k(8, 4, 1)
    (0.0, 1.0, 0.5)

    Raises:
        ValueError: ``k > n`` or ``c`` outside 0..n.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k}).")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def shuffled_images(rows: list[dict]) -> list[dict]:
    """The same rows with each prompt's images taken from the next row of its slice
    (family × difficulty, rows in file order; a slice of one row keeps its image)."""
    by: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by[(r["family"], r["difficulty"])].append(i)
    out = [dict(r) for r in rows]
    for idx in by.values():
        for a, b in zip(idx, idx[1:] + idx[:1]):
            out[a]["images"] = rows[b]["images"]
    return out


def _correct(text: str, row: dict) -> bool:
    from studio.engine.infer.reasoning import parse

    if not format_ok(text):
        return False
    return verify(parse(text).boxed[0], str(row["answer"]), row["task_type"], row.get("choices"))


def _sample_correct(model, processor, rows: list[dict], k: int, temperature: float, max_new_tokens: int,
                    batch_size: int, progress: Callable[[int], None] | None) -> list[int]:
    """Number of right answers among ``k`` samples per row."""
    rep = [r for r in rows for _ in range(k)]
    outs = generate_outputs(model, processor, rep, greedy=False, temperature=temperature,
                            max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return [sum(_correct(outs[i * k + j], r) for j in range(k)) for i, r in enumerate(rows)]


def learnability(model, processor, rows: list[dict], *, k: int = 8, temperature: float = 1.0,
                 max_new_tokens: int = 160, batch_size: int = 32,
                 progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Per slice (family × difficulty, then ``all``): ``{family, difficulty, n, greedy,
    pass@1, pass@k, pass@k_shuffled, follows_image}`` (fractions; ``follows_image`` =
    pass@k − pass@k with the images swapped inside the slice).

    Costs ``len(rows) × (1 + 2k)`` generations (greedy, k samples, k samples shuffled).

    Raises:
        ValueError: ``k < 1``.
    """
    if k < 1:
        raise ValueError("k must be at least 1.")
    greedy = generate_outputs(model, processor, rows, greedy=True, max_new_tokens=max_new_tokens,
                              batch_size=batch_size, progress=progress)
    g = [_correct(t, r) for t, r in zip(greedy, rows)]
    c = _sample_correct(model, processor, rows, k, temperature, max_new_tokens, batch_size, progress)
    cs = _sample_correct(model, processor, shuffled_images(rows), k, temperature, max_new_tokens,
                         batch_size, progress)
    by: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by[(str(r["family"]), int(r["difficulty"]))].append(i)
    out = []
    for (fam, lvl), idx in sorted(by.items()) + [(("all", 0), list(range(len(rows))))]:
        n = len(idx)
        pk = sum(pass_at_k(k, c[i], k) for i in idx) / n
        pks = sum(pass_at_k(k, cs[i], k) for i in idx) / n
        out.append({"family": fam, "difficulty": lvl, "n": n, "greedy": sum(g[i] for i in idx) / n,
                    "pass@1": sum(c[i] / k for i in idx) / n, "pass@k": pk, "pass@k_shuffled": pks,
                    "follows_image": pk - pks, "k": k, "temperature": temperature})
    return out


def learnability_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`learnability`'s rows (percent)."""
    k = rows[0]["k"] if rows else 8
    lines = [f"| family | level | n | greedy % | pass@1 % | pass@{k} % | pass@{k} image swapped % | follows image |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['difficulty'] or 'all'} | {r['n']} | {100 * r['greedy']:.0f} | "
                     f"{100 * r['pass@1']:.0f} | {100 * r['pass@k']:.0f} | {100 * r['pass@k_shuffled']:.0f} | "
                     f"{100 * r['follows_image']:+.0f} |")
    return "\n".join(lines)
