"""Group pooling for RLCS: prompts that share a label (e.g. family × level) share the pass rate
the training rollouts show for that label, so a prompt never drawn yet moves between tiers
without grading rollouts. Used by :class:`studio.engine.train.curriculum.CurriculumState`
(``CurriculumConfig.group_by``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studio.errors import DataError


def group_key(row: Mapping[str, Any], columns: Sequence[str]) -> str | None:
    """A prompt's pooling group: its values of ``columns`` joined by ``-`` (None when a column is
    missing or empty, so the prompt is not pooled).

    >>> group_key({"family": "shapes", "difficulty": 2}, ["family", "difficulty"]), group_key({}, ["family"])
    ('shapes-2', None)
    """
    vals = [row.get(c) for c in columns]
    if not columns or any(v is None or v == "" for v in vals):
        return None
    return "-".join(str(v) for v in vals)


class GroupPool:
    """Per-prompt group keys and per-group sample counts (correct, total) from online rollouts."""

    def __init__(self, num_prompts: int):
        self.keys: list[str | None] = [None] * int(num_prompts)
        self.stats: dict[str, list[int]] = {}  # group → [correct samples, samples]

    def add(self, idx: int, correct: int, samples: int) -> None:
        """Count one scored rollout group of prompt ``idx`` (nothing when it has no group)."""
        key = self.keys[idx]
        if key is not None:
            st = self.stats.setdefault(key, [0, 0])
            st[0] += int(correct)
            st[1] += int(samples)

    def rates(self, min_samples: int) -> dict[str, float]:
        """Pass rate (correct ÷ samples) of every group with at least ``min_samples`` samples."""
        return {g: c / n for g, (c, n) in sorted(self.stats.items()) if n >= min_samples}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields for the curriculum state (``group``, ``group_stats``)."""
        return {"group": list(self.keys), "group_stats": {g: list(v) for g, v in self.stats.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], num_prompts: int) -> GroupPool:
        """Restore from :meth:`to_dict`'s fields; a state saved before pooling existed has none.

        Raises:
            DataError: a key list of another length than ``num_prompts``.
        """
        pool = cls(num_prompts)
        keys = data.get("group") or [None] * num_prompts
        if len(keys) != num_prompts:
            raise DataError(f"Curriculum state field group has {len(keys)} values for {num_prompts} prompts.")
        pool.keys = [None if k is None else str(k) for k in keys]
        pool.stats = {str(g): [int(v[0]), int(v[1])] for g, v in (data.get("group_stats") or {}).items()}
        return pool
