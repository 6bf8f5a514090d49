"""Text normalisation shared by the verifiers.

Two normal forms, chosen per string by :func:`looks_like_math`:

* **math form** (any digit or operator): whitespace, ``$``, ``\\(…\\)``, ``\\left``/``\\right``
  and LaTeX spacing are removed, ``\\text{…}``-style wrappers unwrapped, ``\\dfrac``/``\\tfrac``
  → ``\\frac`` with braced arguments (``\\dfrac12`` → ``\\frac{1}{2}``, as TeX reads it), one
  sentence-final period dropped. Nothing else is touched: signs, decimal points,
  operators, ``!`` and brackets all survive, so ``-x`` ≠ ``x``, ``.5`` ≠ ``5``,
  ``5!`` ≠ ``5``, ``2*3`` ≠ ``2/3`` and ``[0,9)`` ≠ ``(0,9)``.
* **prose form** (letters only): lower case, punctuation dropped, whitespace collapsed.

Before either, :func:`premap` rewrites the Unicode that NFKC would flatten wrongly:
superscripts become ``^{…}`` (NFKC turns ``4²`` into ``42``), vulgar fractions become
``\\frac{a}{b}`` (NFKC turns ``½`` into ``1⁄2`` with a fraction slash), ``−`` becomes ``-``,
``∞`` ``\\infty``, ``π`` ``\\pi``, ``√`` ``\\sqrt``.
"""

from __future__ import annotations

import re
import unicodedata

_SUPER = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni"))
_SUB = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()"))
VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5),
          "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅐": (1, 7), "⅛": (1, 8), "⅜": (3, 8),
          "⅝": (5, 8), "⅞": (7, 8), "⅑": (1, 9), "⅒": (1, 10), "↉": (0, 3)}
_SUPER_RUN = re.compile("[" + "".join(_SUPER) + "]+")
_SUB_RUN = re.compile("[" + "".join(_SUB) + "]+")
_VULGAR_RE = re.compile(r"(\d*)([" + "".join(VULGAR) + "])")
_SYMBOLS = {"\u2212": "-", "\u2044": "/", "\u2215": "/", "÷": "/", "∞": "\\infty ", "π": "\\pi ",
            "√": "\\sqrt", "×": "\\times ", "·": "\\cdot ", "⋅": "\\cdot ", "\u00a0": " "}

_LATEX_WRAPPERS = re.compile(
    r"\\(?:text|textbf|textit|textrm|texttt|textnormal|mathrm|mathbf|mathit|mathsf|mathtt|mbox|hbox|"
    r"operatorname|boxed|fbox|displaystyle)\s*\{([^{}]*)\}"
)
_LATEX_SPACES = re.compile(r"\\(?:quad|qquad|[,;:! >])|~")
_DELIMS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$")
# TeX reads a brace-less argument as one token: a digit, a letter or a command (\frac123 is
# \frac{1}{2}3). latex2sympy's `malformed_operators` fix reads \frac123 as 1/23, so we brace
# the arguments ourselves, by TeX's rule, before any parser sees them.
_ONE_TOKEN = r"(\d|[A-Za-z]|\\[A-Za-z]+)"
_BRACED = r"(\{(?:[^{}]|\{[^{}]*\})*\})"
_FRAC_ARG1 = re.compile(r"\\frac(?![A-Za-z])\s*" + _ONE_TOKEN)
_FRAC_ARG2 = re.compile(r"\\frac\s*" + _BRACED + r"\s*" + _ONE_TOKEN)
_MATH_CHARS = re.compile(r"[\d+*/^=\\_{}<>|]|(?:^|[\s(\[{,])[-−]")


def premap(s: str) -> str:
    """Rewrite superscripts, subscripts, vulgar fractions and math symbols, then NFKC.

    >>> premap("4²"), premap("x⁻¹"), premap("1½"), premap("½"), premap("−3")
    ('4^{2}', 'x^{-1}', '(1+\\\\frac{1}{2})', '\\\\frac{1}{2}', '-3')
    """
    s = str(s)
    s = _SUPER_RUN.sub(lambda m: "^{" + "".join(_SUPER[c] for c in m.group(0)) + "}", s)
    s = _SUB_RUN.sub(lambda m: "_{" + "".join(_SUB[c] for c in m.group(0)) + "}", s)

    def vulgar(m: re.Match) -> str:
        a, b = VULGAR[m.group(2)]
        frac = f"\\frac{{{a}}}{{{b}}}"
        return f"({m.group(1)}+{frac})" if m.group(1) else frac

    s = _VULGAR_RE.sub(vulgar, s)
    for k, v in _SYMBOLS.items():
        if k in s:
            s = s.replace(k, v)
    return unicodedata.normalize("NFKC", s)


def unwrap_latex(s: str) -> str:
    """Remove ``\\text{…}``-style wrappers (repeatedly; innermost first).

    >>> unwrap_latex("\\\\textbf{\\\\text{Paris}}")
    'Paris'
    """
    prev = None
    while prev != s:
        prev = s
        s = _LATEX_WRAPPERS.sub(r"\1", s)
    return s


def clean_math(s: str) -> str:
    """The math form (see module doc): layout removed, every symbol of meaning kept.

    >>> clean_math("$ -\\\\dfrac{1}{2} $"), clean_math("[0, 9)"), clean_math("2 * 3."), clean_math("\\\\left( x \\\\right)")
    ('-\\\\frac{1}{2}', '[0,9)', '2*3', '(x)')
    >>> clean_math("\\\\sin x"), clean_math("3 4")
    ('\\\\sin x', '3 4')
    """
    s = _strip_latex_layout(s)
    # keep one space where it carries meaning: "\\sin x" (not "\\sinx"), "3 4" (not "34")
    s = re.sub(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])", "\\1\x00", s)
    s = re.sub(r"(?<=\d)\s+(?=\d)", "\x00", s)
    s = "".join(s.split()).replace("\x00", " ")
    if len(s) > 1 and s[-1] in ".。":
        s = s[:-1]
    return s


def _strip_latex_layout(s: str) -> str:
    """The steps :func:`clean_math` and :func:`light_clean` share: unwrap LaTeX, turn LaTeX
    spaces and math delimiters into spaces, drop sizing commands, ``\\dfrac``/``\\tfrac`` → ``\\frac``."""
    s = unwrap_latex(premap(s))
    s = _LATEX_SPACES.sub(" ", s)
    s = _DELIMS.sub(" ", s)
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return brace_fractions(s)


def brace_fractions(s: str) -> str:
    """Give every ``\\frac`` braced arguments, reading a brace-less one as TeX does (one
    digit, letter or command), so ``\\frac12``, ``\\frac{1}2`` and ``\\frac{1}{2}`` are one
    string (inside intervals and unions too, where the parser refuses ``\\frac12``).

    >>> brace_fractions("(0,\\\\frac12]"), brace_fractions("\\\\frac123"), brace_fractions("\\\\frac \\\\pi 3")
    ('(0,\\\\frac{1}{2}]', '\\\\frac{1}{2}3', '\\\\frac{\\\\pi}{3}')
    """
    if "\\frac" not in s:
        return s
    s = _FRAC_ARG1.sub(lambda m: "\\frac{" + m.group(1) + "}", s)
    return _FRAC_ARG2.sub(lambda m: "\\frac" + m.group(1) + "{" + m.group(2) + "}", s)


def light_clean(s: str) -> str:
    """Like :func:`clean_math` but whitespace is collapsed to single spaces, not removed
    (the number grammar needs word boundaries: ``4 or more`` is not ``4`` + a unit).

    >>> light_clean("$5\\\\,\\\\text{cm}$."), light_clean("4  or more")
    ('5 cm', '4 or more')
    """
    s = _strip_latex_layout(s)
    s = " ".join(s.split())
    if len(s) > 1 and s[-1] in ".。":
        s = s[:-1].rstrip()
    return s


def looks_like_math(s: str) -> bool:
    """True when a (pre-mapped) string holds a digit, an operator, a backslash command, a
    brace or a leading sign — then it is compared in math form, never as prose.

    >>> looks_like_math("Kyoto"), looks_like_math("-x"), looks_like_math("(B)"), looks_like_math("4²")
    (False, True, False, True)
    """
    return bool(_MATH_CHARS.search(unwrap_latex(premap(s)).strip()))


def normalize_text(s: str) -> str:
    """Normalise for exact comparison: the math form (lower-cased) when the string looks
    like math, else the prose form (lower case, punctuation dropped, spaces collapsed).

    Differs from GLM's reward code on purpose: GLM's normaliser drops punctuation
    everywhere, which made ``-x`` equal ``x`` and ``[0,9)`` equal ``(0,9)``.

    >>> normalize_text("  The \\\\text{Eiffel}  Tower!")
    'the eiffel tower'
    >>> normalize_text("$-3.5$"), normalize_text("(B)"), normalize_text("4²"), normalize_text("5!")
    ('-3.5', 'b', '4^{2}', '5!')
    """
    if looks_like_math(s):
        return clean_math(s).lower()
    t = unwrap_latex(premap(s))
    t = _LATEX_SPACES.sub(" ", t)
    t = _DELIMS.sub(" ", t).lower()
    t = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in t)
    return " ".join(t.split())


# List separators of an unordered answer: , ; 、 ， ； and & 和 与 及 — never "or" (a hedge), and
# never a comma between digits (1,000 is one number).
_LIST_SEP = re.compile(r"\s*(?:[;；、，]|,(?!\d)|\band\b|&|和|与|及)\s*", re.I)


def list_items(s: str) -> list[str]:
    """The items of a list answer, each in :func:`normalize_text` form; empty items (an
    Oxford comma's ``, and``) dropped.

    >>> list_items("Beijing and Tokyo"), list_items("Tokyo, Beijing, and Osaka"), list_items("1,000")
    (['beijing', 'tokyo'], ['tokyo', 'beijing', 'osaka'], ['1,000'])
    >>> list_items("Beijing or Tokyo")
    ['beijing or tokyo']
    """
    t = unwrap_latex(premap(str(s)))
    items = [normalize_text(x) for x in _LIST_SEP.split(t)]
    return [x for x in items if x]


def same_items(pred: str, ref: str) -> bool:
    """Both answers name the same items in any order (the ``exact_unordered`` reward
    setting): equal as multisets, so a missing, extra or repeated item fails. Only a
    reference of two or more items is read as a list.

    >>> same_items("Tokyo, Beijing", "Beijing and Tokyo"), same_items("Tokyo", "Beijing and Tokyo")
    (True, False)
    >>> same_items("Tokyo, Beijing, Osaka", "Beijing and Tokyo"), same_items("Tokyo, Tokyo", "Tokyo and Tokyo")
    (False, True)
    """
    from collections import Counter

    r = list_items(ref)
    return len(r) >= 2 and Counter(list_items(pred)) == Counter(r)
