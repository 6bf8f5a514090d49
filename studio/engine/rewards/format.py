"""The one format judge: ``studio eval``, the RL reward and the data doctor all call
:func:`check_format`, so a completion the reward scores 0 for its format is never counted
as well-formed elsewhere.

Accepted (GLM-4.1V-Thinking, arXiv 2507.01006 §4/§5): optional whitespace,
``<think>…</think>``, optional whitespace, ``<answer>…</answer>``, then the end: optional
whitespace and at most one end token (:data:`END_TOKENS`: ``<|endoftext|>``, ``<|user|>``,
``<|observation|>``, GLM's eos list), as a generation cut at its first eos ends. Exactly one
of each tag, in that order; no text before ``<think>``, nothing after ``</answer>`` but that
end (a runaway ``<|user|><|user|>…`` or a role token such as ``<|assistant|>`` fails); no
control token anywhere else;
no box marker outside ``<answer>``; at most one box, well formed, and exactly one where
the task expects one (``require_box``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from studio.engine.infer.reasoning import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    BOX_CLOSE,
    BOX_OPEN,
    CONTROL_TOKENS,
    THINK_CLOSE,
    THINK_OPEN,
    parse,
)
from studio.engine.rewards.config import EXTRACT_MODES
from studio.errors import ConfigError

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


#: Tokens that may end a completion after ``</answer>`` (GLM-4.1V's generation_config eos
#: list 151329/151336/151338, the same for GLM-4.6V; docs/FAMILIES.md). ``</answer>`` is in
#: that list too, so a completion may also end right there.
END_TOKENS = ("<|endoftext|>", "<|user|>", "<|observation|>")

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


def _strip_end(text: str) -> tuple[str, str]:
    """Split off the end of a completion: trailing whitespace and at most one end token.

    Returns (body, what is left after the end token other than whitespace); the second is
    non-empty only for a second trailing control token, which the caller refuses.
    """
    body = text.rstrip()
    for t in END_TOKENS:
        if body.endswith(t):
            return body[: -len(t)].rstrip(), ""
    for t in CONTROL_TOKENS:
        if body.endswith(t):
            return body, t
    return body, ""


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
    >>> check_format("<think>a</think><answer>1</answer><|user|><|user|>").ok
    False
    """
    t, bad_end = _strip_end(text)
    if bad_end:
        return FormatCheck(False, f"{bad_end} after the answer (at most one end token: "
                                  f"{', '.join(END_TOKENS)})")
    end = t.rfind(ANSWER_CLOSE)
    if end != -1 and t[end + len(ANSWER_CLOSE):].strip():
        return FormatCheck(False, "text after </answer> (only whitespace and one end token may follow)")
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


def require_box_for(extract: str, require_box: bool | None) -> bool:
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
    fc = check_format(completion_text(text), require_box=require_box_for(extract, require_box))
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
