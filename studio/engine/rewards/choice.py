"""Discrete answers: a multiple-choice letter (``choice``) and a count (``counting``).

Grammars:

* choice := prefix? ``(``? letter ``)``? text?  — prefix "the answer is", "option" …;
  LaTeX wrappers and math delimiters (``\\(C\\)``, ``$C$``, ``\\textbf{C}``) are removed
  first; an answer naming two options ("A, B", "AB", "B. or (C)") has no letter.
* count := free text holding exactly one non-negative integer: digits (``1,000``), English
  words ("three", "twenty-one"), Chinese numerals (``三``, ``十只猫``); a whole number
  written with zero decimals (``1.0``, ``3.00``) is that count — datasets exported from
  floats write counts so; several numbers, other decimals (``2.5``, ``1.01``), negatives or
  digits glued to letters ("3x4") give no count. Compared exactly.
"""

from __future__ import annotations

import re

from studio.engine.rewards.numeric import CN_NUMERAL, NUMBER_WORDS, TENS, parse_chinese_int
from studio.engine.rewards.text import light_clean

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

    >>> [parse_choice(x) for x in ("(B)", "B.", "b", "B) 42 apples", "Answer: C", "A, B", "AB", "\\\\(C\\\\)")]
    ['B', 'B', 'B', 'B', 'C', None, None, 'C']
    """
    t = light_clean(str(s)[:2000])
    t = _CHOICE_PREFIX.sub("", t).strip()
    for i, pat in enumerate(_CHOICE_PATTERNS):
        m = pat.fullmatch(t)
        if m:
            rest = t[m.end(1):]
            if i > 0 and _OTHER_OPTION.search(rest):
                return None  # "B. or (C)": more than one option named
            return m.group(1).upper()
    return None


_WORDS = dict(NUMBER_WORDS, **TENS, hundred=100, none=0, no=0)
_DIGIT_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?")


def parse_count(s: str, *, words: bool = True) -> int | None:
    """The one non-negative integer in a counting answer; ``None`` if zero or several.

    >>> [parse_count(x) for x in ("3", "three", "There are 3 apples.", "twenty-one", "3 or 4", "2.5", "十只猫", "三")]
    [3, 3, 3, 21, None, None, 10, 3]
    >>> [parse_count(x) for x in ("1.0", "3.00", "1,000.0", "1.01", "0.0")]
    [1, 3, 1000, None, 0]
    >>> parse_count("three", words=False) is None
    True
    """
    t = light_clean(str(s)[:2000]).lower()
    nums = _DIGIT_NUM.findall(t)
    found: list[int] = []
    for n in nums:
        whole, _, decimals = n.partition(".")
        if n.startswith("-") or decimals.strip("0"):
            return None
        found.append(int(whole.lstrip("+").replace(",", "")))
    if re.search(r"\d", _DIGIT_NUM.sub(" ", t)):
        return None  # digits glued to letters ("3x4"): not a clean count
    if words:
        for cn in re.findall(CN_NUMERAL, t):
            v = parse_chinese_int(cn)
            if v is None:
                return None
            found.append(v)
        toks = re.findall(r"[a-z]+", t)
        i = 0
        while i < len(toks):
            w = toks[i]
            if w in _WORDS and not (w in ("no", "none") and (nums or len(toks) > 2)):
                v = _WORDS[w]
                if w in TENS and i + 1 < len(toks) and toks[i + 1] in NUMBER_WORDS \
                        and 0 < NUMBER_WORDS[toks[i + 1]] < 10:
                    v += NUMBER_WORDS[toks[i + 1]]
                    i += 1
                found.append(v)
            i += 1
    return found[0] if len(found) == 1 else None
