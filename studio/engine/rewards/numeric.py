"""The number grammar and number comparison (task types ``numeric``, ``math``, ``counting``).

Grammar (on :func:`~studio.engine.rewards.text.light_clean` text)::

    quantity := sign? magnitude suffix?
    magnitude := repeating | decimal exponent? | fraction | mixed | infinity | chinese | words
    repeating := 0.\\overline{3} | 0.1\\bar{6} | 0.333... | 0.1666\\ldots  (exact value)
    decimal  := 12 | 12.5 | .5 | 1,234,567 | 1 234 567        (groups of exactly 3)
    exponent := e-19 | E5 | \\times 10^{-19} | \\cdot 10^{3}     (|power| ≤ 400)
    fraction := a/b | \\frac{a}{b} | \\frac12                   (a, b decimals; b ≠ 0)
    mixed    := 1½  (premapped to (1+\\frac{1}{2}))
    infinity := \\infty | ∞ | inf | infinity
    chinese  := 三 | 十 | 二十一 | 一百零五 | 两 …  (百分之五十 = 50 %)
    words    := three | twenty-one | twenty one | none …       (0–99, "a hundred")
    suffix   := % | \\% | percent | pct | ° | ^\\circ | \\degree | degrees | unit
    unit     := 1–3 words of letters (cm, km/h, m^2, apples, 只猫); never a multiplier
                (thousand, k, M, 万, 倍, squared, factorial…), a math letter (x, e, i, π)
                or a hedge (or, to, about, more…)

Values are exact :class:`fractions.Fraction` (``0.1`` is 1/10), so 10^400 or 1.6e-19
never overflow or underflow. A repeating decimal is the rational it stands for
(``0.\\overline{3}`` and ``0.333...`` are exactly 1/3): a bar marks the repeating block; an
ellipsis counts only after a block written out at least twice (``0.33...``, ``0.1212...``,
``0.1666...``), because ``3.14159...`` is a *cut-off* decimal, not a repeating one — that and a
decimal with no ellipsis (``0.33``) stay the finite value they spell, so neither equals 1/3. Comparison (:func:`numbers_equal`):

* non-finite: an infinity equals only the same infinity; NaN equals nothing.
* an integer reference (its value: ``3``, ``3.0``, ``6/2``) is matched exactly — a count
  gets no tolerance (``100001`` ≠ ``100000``, ``3.000001`` ≠ ``3``).
* otherwise ``|a−b| ≤ max(rel_tol, REL_TOL_FLOOR)·max(|a|,|b|)``; no absolute tolerance.
* percent: ``p%`` is ``p/100`` (``50%`` = ``0.5``); as in Math-Verify an *integer*
  percentage also equals the bare integer (``28%`` = ``28``), but ``0.5%`` ≠ ``0.5``.
* degrees are a unit (``72°`` = ``72``; no radian conversion). Units are compared only
  when both sides give one (``5 cm`` = ``5``, ``5 cm`` ≠ ``5 m``).

GLM's public reward code compares floats with an absolute 1e-12 floor and a relative
tolerance for every number; we differ on purpose (the issue's ``0`` vs ``1.6e-19`` and
``100001`` vs ``100000``).
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction

from studio.engine.rewards.config import REL_TOL_FLOOR
from studio.engine.rewards.text import light_clean

MAX_NUMBER_CHARS = 400
MAX_POWER = 400

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+)(?:\.\d*)?|\.\d+"
_EXP = r"(?:[eE](?P<e1>[-+]?\d{1,4})|\s?(?:\\times|\\cdot|\*|×)\s?10\s?\^\s?(?:\{\s?(?P<e2>[-+]?\d{1,4})\s?\}|(?P<e3>\d)))"
_DECIMAL = re.compile(rf"(?P<num>{_NUM})(?:{_EXP})?")
_FRAC = re.compile(rf"\\frac\s?\{{\s?(?P<a>[-+]?(?:{_NUM}))\s?\}}\s?\{{\s?(?P<b>{_NUM})\s?\}}|\\frac(?P<c>\d)(?P<d>\d)"
                   rf"|(?P<p>{_NUM})\s?/\s?(?P<q>{_NUM})")
_REP_BAR = re.compile(r"(?P<int>\d*)\.(?P<pre>\d*)\\(?:overline|bar)\s?\{(?P<rep>\d{1,12})\}")
_REP_DOTS = re.compile(r"(?P<int>\d*)\.(?P<digits>\d{2,60})(?:\.{2,3}|\s?\\[lc]?dots(?![A-Za-z]))")
_MIXED = re.compile(r"\((?P<w>\d+)\+\\frac\{(?P<a>\d+)\}\{(?P<b>\d+)\}\)")
_INF = re.compile(r"\\infty|infinity|inf", re.I)
_PERCENT = re.compile(r"\\?%|percent|per cent|percentage|pct", re.I)
_DEGREE = re.compile(r"°|\^\s?\{?\s?\\circ\s?\}?|\\circ|\\degree|degrees?(?![a-z])", re.I)
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_BIG = {"万": 10 ** 4, "亿": 10 ** 8}
CN_NUMERAL = "[" + "".join(_CN_DIGITS) + "".join(_CN_UNITS) + "".join(_CN_BIG) + "]+"
_CN_RE = re.compile(CN_NUMERAL)

NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen".split())
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
_UNIT_WORD = re.compile(r"(?:[A-Za-zµμΩÅ]+|[\u4e00-\u9fff]+)(?:\^\{?-?\d\}?)?")
_UNIT = re.compile(rf"{_UNIT_WORD.pattern}(?:\s?[/·*.]\s?{_UNIT_WORD.pattern}|\s{_UNIT_WORD.pattern}){{0,2}}")
#: One-letter units we accept (x, e, i, k, M … are not units).
_ONE_LETTER_UNITS = set("mgsAVWJNLhlCFTΩ")
#: Words that change the number or hedge it: never a unit.
_NOT_UNITS = {
    "pi", "e", "i", "x", "y", "z", "n", "k", "K", "M", "G", "B", "b", "t", "thousand", "thousands", "million",
    "millions", "billion", "billions", "trillion", "hundred", "hundreds", "dozen", "dozens", "squared", "cubed",
    "factorial", "times", "over", "plus", "minus", "and", "or", "to", "not", "no", "more", "less", "than",
    "about", "approx", "approximately", "around", "roughly", "nearly", "almost", "least", "most", "between",
    "maybe", "perhaps", "ish", "sqrt", "log", "ln", "sin", "cos", "tan", "exp", "inf", "infinity", "infty",
    "percent", "th", "st", "nd", "rd", "half", "halves", "third", "thirds", "quarter", "quarters", "mod",
    "frac", "cdot", "times",
}
_CN_NOT_UNITS = set("万亿倍分之多余几百千十点负加减乘除或到至")


@dataclasses.dataclass(frozen=True)
class Quantity:
    """A parsed number.

    Attributes:
        value: exact value (``None`` for an infinity or NaN).
        special: ``""``, ``"inf"``, ``"-inf"`` or ``"nan"``.
        percent: written with ``%``/``percent`` (``value`` is the number before it).
        degree: written with a degree sign.
        unit: the unit text (``""`` when none).
    """

    value: Fraction | None
    special: str = ""
    percent: bool = False
    degree: bool = False
    unit: str = ""

    @property
    def finite(self) -> bool:
        """True unless the quantity is an infinity or NaN."""
        return self.value is not None


def parse_chinese_int(s: str) -> int | None:
    """Integer written in Chinese numerals (``三`` 3, ``十`` 10, ``二十一`` 21, ``一百零五`` 105,
    ``两万`` 20000); ``None`` when ``s`` is not one.

    >>> [parse_chinese_int(x) for x in ("三", "十", "十五", "二十一", "一百零五", "两万三千", "猫")]
    [3, 10, 15, 21, 105, 23000, None]
    """
    if not s or not _CN_RE.fullmatch(s):
        return None
    total, section, digit, last_unit = 0, 0, None, None
    for ch in s:
        if ch in "零〇":
            continue  # a placeholder: 一百零五 = 105
        if ch in _CN_DIGITS:
            if digit is not None and _CN_DIGITS[ch] != 0 and last_unit is None:
                return None  # "三四": two digits in a row is not a number
            digit = _CN_DIGITS[ch]
            last_unit = None
        elif ch in _CN_UNITS:
            u = _CN_UNITS[ch]
            section += (1 if digit is None else digit) * u
            digit, last_unit = None, u
        else:
            big = _CN_BIG[ch]
            total = (total + section + (digit or 0)) * big
            section, digit, last_unit = 0, None, big
    return total + section + (digit or 0)


def parse_number_words(s: str) -> int | None:
    """0–99 (and "a/one hundred") in English words, the whole string; else ``None``.

    >>> [parse_number_words(x) for x in ("three", "Twenty-one", "twenty one", "none", "3", "one two")]
    [3, 21, 21, 0, None, None]
    """
    toks = re.split(r"[\s-]+", s.strip().lower())
    if toks == ["none"] or toks == ["no"]:
        return 0
    if toks in (["a", "hundred"], ["one", "hundred"], ["hundred"]):
        return 100
    if len(toks) == 1 and toks[0] in NUMBER_WORDS:
        return NUMBER_WORDS[toks[0]]
    if len(toks) == 1 and toks[0] in TENS:
        return TENS[toks[0]]
    if len(toks) == 2 and toks[0] in TENS and toks[1] in NUMBER_WORDS and 0 < NUMBER_WORDS[toks[1]] < 10:
        return TENS[toks[0]] + NUMBER_WORDS[toks[1]]
    return None


def _decimal(text: str) -> Fraction:
    return Fraction(text.replace(",", "").replace(" ", "").rstrip(".") or "0")


def repeating_value(whole: str, pre: str, rep: str) -> Fraction:
    """The value of ``whole.pre rep rep rep …`` (``rep`` repeating forever).

    >>> repeating_value("0", "", "3"), repeating_value("0", "1", "6"), repeating_value("2", "", "142857")
    (Fraction(1, 3), Fraction(1, 6), Fraction(15, 7))
    """
    head = Fraction(int(whole or "0")) + (Fraction(int(pre), 10 ** len(pre)) if pre else 0)
    return head + Fraction(int(rep), 10 ** len(pre) * (10 ** len(rep) - 1))


def _repeating(t: str) -> tuple[Fraction, int] | None:
    """(value, end) of a repeating decimal at the start of ``t`` (module doc), else None."""
    m = _REP_BAR.match(t)
    if m:
        return repeating_value(m.group("int"), m.group("pre"), m.group("rep")), m.end()
    m = _REP_DOTS.match(t)
    if not m:
        return None
    d = m.group("digits")
    for n in range(1, len(d) // 2 + 1):  # the shortest block written out at least twice at the end
        block = d[-n:]
        if d.endswith(block * 2):
            k = 2
            while d.endswith(block * (k + 1)):
                k += 1
            return repeating_value(m.group("int"), d[: len(d) - k * n], block), m.end()
    return None


def _magnitude(t: str) -> tuple[Fraction | None, str, int] | None:
    """(value, special, end) of the number at the start of ``t``; None if there is none."""
    rep = _repeating(t)
    if rep is not None:
        return rep[0], "", rep[1]
    if _REP_DOTS.match(t):
        return None  # an ellipsis after digits that do not repeat: a cut-off value
    m = _MIXED.match(t)
    if m:
        if int(m.group("b")) == 0:
            return None
        return Fraction(int(m.group("w"))) + Fraction(int(m.group("a")), int(m.group("b"))), "", m.end()
    m = _FRAC.match(t)
    if m:
        if m.group("c"):
            a, b = Fraction(int(m.group("c"))), Fraction(int(m.group("d")))
        elif m.group("a") is not None:
            a, b = _decimal(m.group("a").lstrip("+")), _decimal(m.group("b"))
        else:
            a, b = _decimal(m.group("p")), _decimal(m.group("q"))
        return (a / b, "", m.end()) if b != 0 else None
    m = _INF.match(t)
    if m:
        return None, "inf", m.end()
    m = _DECIMAL.match(t)
    if m:
        v = _decimal(m.group("num"))
        e = m.group("e1") or m.group("e2") or m.group("e3")
        if e is not None:
            if abs(int(e)) > MAX_POWER:
                return None
            v *= Fraction(10) ** int(e)
        return v, "", m.end()
    m = re.match(r"百分之(" + CN_NUMERAL + ")", t)
    if m and parse_chinese_int(m.group(1)) is not None:
        return Fraction(parse_chinese_int(m.group(1))), "%", m.end()
    m = _CN_RE.match(t)
    if m and parse_chinese_int(m.group(0)) is not None:
        return Fraction(parse_chinese_int(m.group(0))), "", m.end()
    return None


def _is_unit(u: str) -> bool:
    if not _UNIT.fullmatch(u):
        return False
    words = re.findall(r"[A-Za-zµμΩÅ]+|[\u4e00-\u9fff]+", u)
    for w in words:
        if w in _NOT_UNITS or w.lower() in _NOT_UNITS - {"m", "g", "s", "l", "t"}:
            return False
        if len(w) == 1 and w.isascii() and w not in _ONE_LETTER_UNITS:
            return False
        if any(c in _CN_NOT_UNITS or c in "零〇一二两三四五六七八九" for c in w if "\u4e00" <= c <= "\u9fff"):
            if not re.fullmatch(r"[\u4e00-\u9fff]+", w) or set(w) & _CN_NOT_UNITS:
                return False
            if w[0] in "零〇一二两三四五六七八九":
                return False
    return True


def parse_quantity(s: str) -> Quantity | None:
    """Parse ``s`` with the number grammar (module doc); ``None`` if it is not a number.

    >>> q = parse_quantity("−1.6 \\\\times 10^{-19} C"); (q.value == -16 * __import__("fractions").Fraction(10) ** -20, q.unit)
    (True, 'C')
    >>> [str(parse_quantity(x).value) for x in ("1,000", ".5", "\\\\frac{3}{4}", "½", "三", "50\\\\%")]
    ['1000', '1/2', '3/4', '1/2', '3', '50']
    >>> [parse_quantity(x) for x in ("2x", "4 or 5", "5 thousand", "5!", "4²", "3 4")]
    [None, None, None, None, None, None]
    """
    raw = str(s)
    if len(raw) > MAX_NUMBER_CHARS:
        return None
    t = light_clean(raw)
    if not t:
        return None
    w = parse_number_words(t)
    if w is not None:
        return Quantity(Fraction(w))
    sign = 1
    if t[0] in "+-":
        sign, t = (-1 if t[0] == "-" else 1), t[1:].lstrip()
    elif t.startswith("负"):
        sign, t = -1, t[1:]
    mag = _magnitude(t)
    if mag is None:
        return None
    value, special, end = mag
    percent = special == "%"
    if special == "%":
        special = ""
    rest = t[end:].strip()
    degree = False
    m = _PERCENT.match(rest)
    if m and not percent:
        percent, rest = True, rest[m.end():].strip()
    else:
        m = _DEGREE.match(rest)
        if m:
            degree, rest = True, rest[m.end():].strip()
    if rest and not _is_unit(rest):
        return None
    if special:
        if percent or rest:
            return None
        return Quantity(None, "inf" if sign > 0 else "-inf", degree=degree)
    return Quantity(sign * value, "", percent, degree, rest)


def parse_number(s: str) -> float | None:
    """A plain number as a float (no unit; a trailing ``%`` is dropped, as before); ``None``
    for anything else, for infinities and for values a float cannot hold.

    >>> parse_number("1,000.5"), parse_number("3/4"), parse_number("50%"), parse_number("2x"), parse_number("\\\\infty")
    (1000.5, 0.75, 50.0, None, None)
    """
    q = parse_quantity(s)
    if q is None or not q.finite or q.unit:
        return None
    try:
        return float(q.value)
    except OverflowError:
        return None


def _unit_key(u: str) -> str:
    return re.sub(r"\s+", "", u)


def close(a: Fraction, ref: Fraction, rel_tol: float) -> bool:
    """``a`` matches the reference value: exactly when ``ref`` is an integer, else within
    ``max(rel_tol, REL_TOL_FLOOR)`` relative to the larger magnitude (no absolute tolerance).

    >>> close(Fraction(100001), Fraction(100000), 1e-5), close(Fraction(0), Fraction(16, 10**20), 1e-5)
    (False, False)
    >>> close(Fraction(31415927, 10**7), Fraction(314159265, 10**8), 1e-5)
    True
    """
    if a == ref:
        return True
    if ref.denominator == 1:
        return False
    tol = Fraction(max(rel_tol, REL_TOL_FLOOR))
    return abs(a - ref) <= tol * max(abs(a), abs(ref))


def _readings(q: Quantity, other: Quantity) -> list[Fraction]:
    if not q.percent:
        return [q.value]
    out = [q.value / 100]
    if not other.percent and q.value.denominator == 1:
        out.append(q.value)  # Math-Verify: 9% == 9
    return out


def numbers_equal(pred: Quantity, ref: Quantity, rel_tol: float = 1e-5) -> bool:
    """Compare two quantities by the rules in the module doc.

    >>> P = parse_quantity
    >>> numbers_equal(P("50%"), P("0.5")), numbers_equal(P("72°"), P("72")), numbers_equal(P("28 percent"), P("28\\\\%"))
    (True, True, True)
    >>> numbers_equal(P("\\\\infty"), P("42")), numbers_equal(P("0.5%"), P("0.5")), numbers_equal(P("5 cm"), P("5 m"))
    (False, False, False)
    """
    if pred.special or ref.special:
        return pred.special == ref.special and pred.special in ("inf", "-inf")
    if pred.unit and ref.unit and _unit_key(pred.unit) != _unit_key(ref.unit):
        return False
    return any(close(a, b, rel_tol) for a in _readings(pred, ref) for b in _readings(ref, pred))
