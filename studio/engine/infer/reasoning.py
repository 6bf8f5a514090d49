"""Parse GLM-V output: ``<think>…</think><answer>…</answer>`` (GLM-4.1V) or
``<think>…</think>answer`` (GLM-4.5V/4.6V), and boxes.

Tolerant by design, because it runs on every streamed fragment and on whatever a model
or a user's dataset produces:

* unclosed tags: ``<think>abc`` is thinking still in progress; ``<answer>x`` is an
  answer still in progress;
* a missing opening ``<think>`` before a ``</think>``: what precedes it is thinking;
* no tags at all (a Base model, a plain chat model): the whole text is the answer;
* no ``<answer>`` tag after ``</think>`` (GLM-4.6V's format, or thinking switched off,
  ``<think></think>answer``): what follows ``</think>`` is the answer;
* a tag cut in half at the end of a stream fragment (``</thi``) is held back, never shown.

Boxes follow GLM-4.1V: the final result of a verifiable task is wrapped in
``<|begin_of_box|>…<|end_of_box|>``; for grounding the span holds ``[x1,y1,x2,y2]`` (or
a list of such) on a 0–1000 scale of the image size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from studio.engine.infer.family import ANSWER_CLOSE, ANSWER_OPEN, BOX_CLOSE, BOX_OPEN, THINK_CLOSE, THINK_OPEN
REASONING_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, BOX_OPEN, BOX_CLOSE)
#: Tokens that end a turn or frame the prompt; never shown to a user.
CONTROL_TOKENS = (
    "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|observation|>",
    "[gMASK]", "<sop>", "<eop>", "[MASK]", "[sMASK]",
    "<|begin_of_image|>", "<|end_of_image|>", "<|image|>",
    "<|begin_of_video|>", "<|end_of_video|>", "<|video|>",
)
_ALL_TAGS = REASONING_TAGS + CONTROL_TOKENS


@dataclass
class Box:
    """A box on GLM's 0–1000 scale. ``to_pixels`` maps it to an image of size (w, h)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Return integer pixel coordinates (clamped to the image), x1<=x2, y1<=y2."""
        xs = sorted((self.x1, self.x2))
        ys = sorted((self.y1, self.y2))

        def sx(v: float) -> int:
            return int(round(min(max(v, 0.0), 1000.0) / 1000.0 * width))

        def sy(v: float) -> int:
            return int(round(min(max(v, 0.0), 1000.0) / 1000.0 * height))

        return sx(xs[0]), sy(ys[0]), sx(xs[1]), sy(ys[1])


@dataclass
class Parsed:
    """One parsed model output.

    Attributes:
        thinking: text inside ``<think>`` (without tags); "" if none.
        answer: the answer text with box markers removed (their content kept).
        answer_raw: the answer text as generated (box markers kept).
        boxed: contents of each ``<|begin_of_box|>…<|end_of_box|>`` span inside the answer.
        boxes: coordinates parsed from ``boxed`` where they look like ``[x1,y1,x2,y2]``.
        has_think: a ``<think>`` or ``</think>`` tag was seen.
        thinking_closed: ``</think>`` was seen (False while thinking streams).
        has_answer_tag: ``<answer>`` was seen.
        answer_closed: ``</answer>`` was seen.
    """

    thinking: str = ""
    answer: str = ""
    answer_raw: str = ""
    boxed: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    has_think: bool = False
    thinking_closed: bool = False
    has_answer_tag: bool = False
    answer_closed: bool = False

    @property
    def in_thinking(self) -> bool:
        """True while the text is inside an unclosed ``<think>``."""
        return self.has_think and not self.thinking_closed


def hold_back_partial_tag(text: str) -> tuple[str, str]:
    """Split off a trailing fragment that could be the start of a tag.

    >>> hold_back_partial_tag("so the answer</thi")
    ('so the answer', '</thi')
    >>> hold_back_partial_tag("a < b")
    ('a < b', '')
    """
    start = max(text.rfind("<"), text.rfind("["))
    if start == -1:
        return text, ""
    tail = text[start:]
    if any(t.startswith(tail) and t != tail for t in _ALL_TAGS):
        return text[:start], tail
    return text, ""


def strip_control_tokens(text: str) -> str:
    """Remove role/end/media control tokens (not the think/answer/box tags).

    >>> strip_control_tokens("<answer>4</answer><|user|>")
    '<answer>4</answer>'
    """
    for t in CONTROL_TOKENS:
        text = text.replace(t, "")
    return text


_NUM = r"-?\d+(?:\.\d+)?"
_BOX_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")


def parse_boxes(span: str) -> list[Box]:
    """Parse ``[x1,y1,x2,y2]`` boxes (one, or a list of them) from a box span.

    >>> parse_boxes("[[10,20,300,400],[5, 5, 50, 60]]")
    [Box(x1=10.0, y1=20.0, x2=300.0, y2=400.0), Box(x1=5.0, y1=5.0, x2=50.0, y2=60.0)]
    >>> parse_boxes("42")
    []
    """
    return [Box(*(float(g) for g in m.groups())) for m in _BOX_RE.finditer(span)]


def _boxed_spans(answer: str) -> list[str]:
    spans = []
    pos = 0
    while True:
        i = answer.find(BOX_OPEN, pos)
        if i == -1:
            return spans
        j = answer.find(BOX_CLOSE, i + len(BOX_OPEN))
        if j == -1:  # unclosed box at the end of a stream: take what is there
            spans.append(answer[i + len(BOX_OPEN):])
            return spans
        spans.append(answer[i + len(BOX_OPEN):j])
        pos = j + len(BOX_CLOSE)


def parse(text: str, *, streaming: bool = False) -> Parsed:
    """Split a model output into thinking, answer and boxes.

    Args:
        text: decoded output, *with* special tokens kept (control tokens are removed here).
        streaming: hold back a half-written tag at the end instead of showing it.

    Returns:
        A :class:`Parsed`. Never raises on malformed text.

    >>> p = parse("<think>2+2</think><answer>It is <|begin_of_box|>4<|end_of_box|></answer>")
    >>> (p.thinking, p.answer, p.boxed, p.thinking_closed, p.answer_closed)
    ('2+2', 'It is 4', ['4'], True, True)
    >>> parse("<think>still going", streaming=True).in_thinking
    True
    >>> parse("plain base-model text").answer
    'plain base-model text'
    """
    text = strip_control_tokens(text)
    if streaming:
        text, _ = hold_back_partial_tag(text)
    out = Parsed()
    rest = text
    i_open, i_close = rest.find(THINK_OPEN), rest.find(THINK_CLOSE)
    if i_open != -1 and (i_close == -1 or i_open < i_close):
        out.has_think = True
        after = rest[i_open + len(THINK_OPEN):]
        j = after.find(THINK_CLOSE)
        if j == -1:
            out.thinking = after.strip()
            return out
        out.thinking, out.thinking_closed = after[:j].strip(), True
        rest = after[j + len(THINK_CLOSE):]
    elif i_close != -1:  # "</think>" without an opening tag
        out.has_think = out.thinking_closed = True
        out.thinking = rest[:i_close].strip()
        rest = rest[i_close + len(THINK_CLOSE):]
    a_open = rest.find(ANSWER_OPEN)
    if a_open != -1:
        out.has_answer_tag = True
        rest = rest[a_open + len(ANSWER_OPEN):]
        a_close = rest.find(ANSWER_CLOSE)
        if a_close != -1:
            out.answer_closed = True
            rest = rest[:a_close]
    else:
        a_close = rest.find(ANSWER_CLOSE)
        if a_close != -1:
            out.answer_closed = True
            rest = rest[:a_close]
    # Stray tags inside the answer (a model repeating itself) are not shown.
    for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE):
        rest = rest.replace(t, "")
    out.answer_raw = rest.strip()
    out.boxed = [s.strip() for s in _boxed_spans(out.answer_raw)]
    out.boxes = [b for s in out.boxed for b in parse_boxes(s)]
    out.answer = out.answer_raw.replace(BOX_OPEN, "").replace(BOX_CLOSE, "")
    return out


def strip_thinking(text: str, family=None) -> str:
    """What a history turn keeps of an assistant reply: the answer, without thinking.

    The official GLM-4.1V demo removes earlier turns' ``<think>`` from the history before
    rendering (the template does not). For GLM-4.1V we keep the answer in its ``<answer>``
    tags so the model sees its own format; a family without answer tags (GLM-4.6V, whose
    template adds the empty ``<think></think>`` itself) keeps the bare answer.

    Args:
        family: a :class:`studio.engine.infer.family.Family`; None = GLM-4.1V.

    >>> strip_thinking("<think>long</think><answer>4</answer>")
    '<answer>4</answer>'
    >>> from studio.engine.infer.family import GLM46V_FORMAT
    >>> strip_thinking("<think>long</think>4", GLM46V_FORMAT)
    '4'
    >>> strip_thinking("no tags")
    'no tags'
    """
    from studio.engine.infer.family import DEFAULT

    p = parse(text)
    if not p.has_think and not p.has_answer_tag:
        return p.answer_raw
    return (family or DEFAULT).history_reply(True, p.answer_raw)
