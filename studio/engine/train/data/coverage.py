"""What the doctor says about *how* the data was read and what training will learn from it.

Nothing a user wrote should be dropped without a word: the report names the format each
row was read as (and why SFT), the rows whose untagged images were placed by rule, the rows
with a system prompt, and — for the chosen loss policy — how many assistant answers carry
loss and which do not (with ``last_thinking``, the default, only the last answer of a
multi-turn row is trained; LLaMA-Factory and ms-swift train every answer by default).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from studio.engine.train.data.collator import training_messages
from studio.engine.train.data.formats import Row
from studio.engine.train.data.checks import plural


@dataclass
class Coverage:
    """Assistant answers under a loss policy.

    Attributes:
        policy: the policy name; answers: assistant turns in all rows; trained: those that
            carry loss; untrained: ``(row, answer number)`` pairs, both 1-based, without loss.
    """

    policy: str
    answers: int = 0
    trained: int = 0
    untrained: list[tuple[int, int]] = field(default_factory=list)

    def line(self) -> str:
        """One sentence for the report (says what to change when some answers carry no loss)."""
        head = f"Loss ({self.policy}): {self.trained} of {plural(self.answers, 'assistant answer')} trained"
        if not self.untrained:
            return head + "."
        by_turn: dict[int, list[int]] = {}
        for row, turn in self.untrained:
            by_turn.setdefault(turn, []).append(row)
        parts = [f"answer {turn} of {_rows(rows)}" for turn, rows in sorted(by_turn.items())][:4]
        n = len(self.untrained)
        return (f"{head}; {n} earlier {'answer is' if n == 1 else 'answers are'} context without loss "
                f"({'; '.join(parts)}{' …' if len(by_turn) > 4 else ''}) — policy all_turns trains every answer.")


def loss_coverage(rows: Sequence[Row], policy: str, family=None) -> Coverage:
    """Count the assistant answers that carry loss under ``policy`` (what the collator will
    train, from :func:`~.collator.training_messages`)."""
    cov = Coverage(policy)
    for n, row in enumerate(rows, 1):
        turn = 0
        for m in training_messages(row, policy, family):
            if m["role"] != "assistant":
                continue
            turn += 1
            cov.answers += 1
            if m.get("loss", "all") != "none":
                cov.trained += 1
            else:
                cov.untrained.append((n, turn))
    return cov


def read_notes(rows: Sequence[Row], labels: dict[str, str] | None = None, kind=None, entry=None) -> list[str]:
    """Sentences on how the rows were read: formats (row counts), why SFT, the
    ``dataset_info.json`` entry, rows with a system prompt, rows whose media were placed."""
    from studio.engine.train.data.readers import LABELS

    labels = labels or LABELS
    formats = Counter(r.meta.get("format", "?") for r in rows)
    notes = []
    if formats:
        read = ", ".join(f"{labels.get(f, f)} ({plural(n, 'row')})" for f, n in formats.most_common())
        if entry is not None and entry.formatting == "sharegpt":
            t = entry.tags
            read += (f", with the names of dataset_info.json entry '{entry.name}' (turns in "
                     f"`{entry.column('messages', 'conversations')}`, keys {t['role_tag']}/{t['content_tag']}, "
                     f"roles {t['user_tag']}/{t['assistant_tag']})")
        elif entry is not None:
            read += f", with the column names of dataset_info.json entry '{entry.name}' (alpaca)"
        notes.append(f"Read as {read}.")
    if kind is not None:
        notes.append(f"SFT data: {kind.reason}.")
    with_system = [n for n, r in enumerate(rows, 1) if any(m["role"] == "system" for m in r.messages)]
    if with_system:
        notes.append(f"System prompt in {_rows(with_system)}: trained as context (no loss).")
    placed = [n for n, r in enumerate(rows, 1) if r.meta.get("media_placed")]
    if placed:
        notes.append(f"No <image>/<video> tags in {_rows(placed)} (one user turn each): their media go before "
                     f"the first user text, as TRL and LLaMA-Factory place them.")
    return notes


def _rows(ns: Sequence[int]) -> str:
    """``rows 1–6, 9`` (consecutive numbers as ranges; at most 8 pieces).

    >>> _rows([1, 2, 3, 5]), _rows([4]), _rows(list(range(1, 30, 2)))
    ('rows 1–3, 5', 'row 4', 'rows 1, 3, 5, 7, 9, 11, 13, 15 and 7 more')
    """
    pieces: list[str] = []
    start = prev = None
    for n in sorted(ns):
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            pieces.append(f"{start}–{prev}" if prev != start else f"{start}")
        start = prev = n
    if start is not None:
        pieces.append(f"{start}–{prev}" if prev != start else f"{start}")
    more = len(pieces) - 8
    word = "row " if len(ns) == 1 else "rows "
    return word + ", ".join(pieces[:8]) + (f" and {more} more" if more > 0 else "")
