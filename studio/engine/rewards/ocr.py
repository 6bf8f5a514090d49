"""OCR similarity: ``1 − Levenshtein distance / max(len)``, bounded in time.

GLM's reward code (and TRL examples) use a plain O(n·m) dynamic programme; on a 20 KB
answer against a 20 KB reference that took 10 s inside a training step, and 100 KB did not
finish in 60 s. Here:

* the distance is exact but bit-parallel (Myers 1999, "A fast bit-vector algorithm for
  approximate string matching based on dynamic programming", J. ACM 46(3); in the form of
  Hyyrö 2001, "Explaining and extending the bit-parallel approximate string matching
  algorithm of Myers"): one pass over the longer string with Python integers as bit
  vectors as long as the shorter one — about 0.1 s for 10,000 × 10,000 characters;
* a common prefix and suffix are dropped first (exact); what is left of each side is
  capped at :data:`MAX_OCR_CHARS`; characters beyond the cap count as
  errors (``d ≤ d(prefixes) + longer tail``: a lower bound of the true similarity, never
  more than it), so a runaway answer cannot stall a run and cannot gain from being long;
  inputs are first cut at 4× the cap. ``check_reference`` refuses longer
  references (split the page instead).
"""

from __future__ import annotations

import unicodedata

#: Characters of each side that are compared; the rest count as errors.
MAX_OCR_CHARS = 10_000


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (unit costs), exact, bit-parallel (Myers/Hyyrö).

    >>> edit_distance("kitten", "sitting"), edit_distance("", "abc"), edit_distance("abc", "abc")
    (3, 3, 0)
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, c in enumerate(b):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for c in a:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def _norm(s: str, case_sensitive: bool) -> str:
    s = " ".join(unicodedata.normalize("NFKC", s).split())
    return s if case_sensitive else s.lower()


def edit_similarity(pred: str, ref: str, *, case_sensitive: bool = False,
                    max_chars: int = MAX_OCR_CHARS) -> float:
    """OCR score: ``1 − edit_distance / max(len)`` after NFKC and whitespace collapse, in [0, 1].

    Beyond ``max_chars`` per side the excess counts as wrong characters (see module doc).

    >>> edit_similarity("Hello world", "hello  world")
    1.0
    >>> round(edit_similarity("abcd", "abcf"), 2), round(edit_similarity("ab" * 10, "ba" * 10, max_chars=5), 2)
    (0.75, 0.15)
    """
    # a cheap cut before normalising: whitespace collapse can only shorten a string
    a = _norm(str(pred)[: 4 * max_chars], case_sensitive)
    b = _norm(str(ref)[: 4 * max_chars], case_sensitive)
    if not a and not b:
        return 1.0
    la, lb = len(a), len(b)
    # a common prefix and suffix never change the distance: drop them (exact, O(n))
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(la, lb) - i and a[la - 1 - j] == b[lb - 1 - j]:
        j += 1
    ma, mb = a[i:la - j], b[i:lb - j]
    # d(a, b) <= d(a[:c], b[:c]) + d(tails) <= d(a[:c], b[:c]) + max(tail lengths)
    extra = max(len(ma) - max_chars, len(mb) - max_chars, 0)
    d = edit_distance(ma[:max_chars], mb[:max_chars]) + extra
    return max(0.0, 1.0 - d / max(la, lb))
