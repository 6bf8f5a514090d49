"""SFT data or RL prompts? Decided by the columns, the same way for JSON, JSONL, CSV, Parquet and
``datasets`` folders, with the reason in words (``studio doctor`` prints it).

SFT rows carry the answer to train on: assistant turns in ``messages`` / ``conversations``
/ ``conversation``, or a ``completion`` / ``output`` / ``response`` column, or a Compare
vote. RL rows carry a prompt (``prompt`` / ``question`` / ``problem`` / a messages list
without an assistant turn) and a reference the verifier checks (``answer`` / ``solution`` /
``ground_truth`` / ``reward_model.ground_truth``) — and no answer to imitate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from studio.engine.train.data.readers.rl_rows import answer_of, text_column

_TURN_COLUMNS = ("messages", "conversations", "conversation")
_ASSISTANT = ("assistant", "gpt", "model")


@dataclass(frozen=True)
class Kind:
    """``kind`` ``"sft"`` or ``"rl"``, and ``reason``: which columns decided it."""

    kind: Literal["sft", "rl"]
    reason: str


def _answer_turns(rec: dict) -> str | None:
    """The column with an answer to imitate, or None."""
    for col in _TURN_COLUMNS:
        turns = rec.get(col)
        if isinstance(turns, list):
            for m in turns:
                if isinstance(m, dict) and (m.get("role", m.get("from")) in _ASSISTANT or "assistant" in m):
                    return f"`{col}` with assistant turns"
    for col in ("completion", "output", "response", "chosen"):
        if rec.get(col) not in (None, ""):
            return f"{'an' if col[0] in 'aeiou' else 'a'} `{col}` column"
    if "vote" in rec and "outputs" in rec:
        return "Compare votes (`vote`, `outputs`)"
    return None


def detect_kind(rec: dict) -> Kind:
    """SFT or RL for a dataset whose first row is ``rec``.

    >>> detect_kind({"problem": "<image>Find x.", "answer": "3", "images": []}).kind
    'rl'
    >>> detect_kind({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}).reason
    'rows have the answer to train on (`messages` with assistant turns)'
    """
    target = _answer_turns(rec)
    ref, ref_col = answer_of(rec)
    if target:
        reason = f"rows have the answer to train on ({target})"
        if ref_col:
            reason += f"; their `{ref_col}` column is not used by SFT (`--rl` checks the file as RL prompts)"
        return Kind("sft", reason)
    text_col = text_column(rec)
    if ref_col and text_col:
        return Kind("rl", f"rows have a prompt (`{text_col}`) and a reference answer (`{ref_col}`) but no "
                          f"answer to imitate")
    if text_col and text_col != "messages" and not ref_col and ("prompt" in rec or "problem" in rec):
        return Kind("rl", f"rows have a prompt (`{text_col}`) and no answer to imitate, but no reference answer "
                          f"either (add `answer`)")
    return Kind("sft", f"no RL reference column (`answer`, `solution`, `ground_truth`) — read as SFT")
