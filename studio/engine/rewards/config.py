"""Reward settings and task types (the ``rewards:`` block of an RL config)."""

from __future__ import annotations

import dataclasses
from typing import Any

from studio.config import YamlConfig, check

#: Canonical task types, each with its answer grammar and verifier (see the package doc).
TASK_TYPES = ("math", "numeric", "exact", "choice", "counting", "ocr", "grounding")
#: ``task_type`` value (and ``default_task_type``) meaning "infer from the reference".
AUTO = "auto"
#: Other spellings accepted in a dataset's ``task_type`` column.
TASK_ALIASES = {
    "text": "exact", "string": "exact", "short_answer": "exact",
    "number": "numeric", "expression": "math",
    "mc": "choice", "multiple_choice": "choice", "multiple-choice": "choice", "mcq": "choice",
    "count": "counting",
    "box": "grounding", "bbox": "grounding", "detection": "grounding",
}
EXTRACT_MODES = ("box", "box_or_answer")
#: Smallest relative tolerance ever applied to non-integer numbers (a smaller ``rel_tol``
#: is raised to it): float round-off when SymPy evaluates a closed form such as
#: ``\sqrt{2}^2`` is ~1e-16, so 1e-12 keeps equal values equal without letting
#: different ones through. Integers never get a tolerance.
REL_TOL_FLOOR = 1e-12


@dataclasses.dataclass
class RewardConfig(YamlConfig):
    """Reward settings (the ``rewards:`` block of an RL config).

    Attributes:
        functions: reward names from :data:`~studio.engine.rewards.REGISTRY`; TRL sums them.
        extract: ``"box"`` — the answer is the box inside ``<answer>`` (no box, no
            answer); ``"box_or_answer"`` — the box if there is one, else the whole answer.
        require_box: format needs exactly one box; ``None`` means "when extract is box".
        format_bonus: added to the score of every completion whose format is right
            (0.0 by default: no additive bonus, as RLCS.md says).
        iou_threshold: grounding reward is the IoU (``None``) or 1.0 when IoU ≥ this.
        ref_box_scale: grounding references on the ``"0-1000"`` scale (GLM's) or in
            ``"pixels"`` (then the ``image_size`` column, ``[w, h]``, converts them).
        rel_tol: relative tolerance for non-integer numbers, ``|a−b| ≤ rel_tol·max(|a|,|b|)``
            (GLM's public code: 1e-5); never below :data:`REL_TOL_FLOOR`. There is no
            absolute tolerance (0 ≠ 1.6e-19) and an integer reference is matched exactly.
        exact_unordered: ``exact`` also accepts a list answer in any order: a reference
            of two or more items separated by ``,`` ``;`` ``and`` ``&`` ``、`` ``和``…
            ("Beijing and Tokyo") matches the same items in another order ("Tokyo,
            Beijing"); a missing, extra or repeated item still scores 0, and "or" never
            separates items. Off by default (order can be the answer).
        count_words: counting accepts number words ("three", "三") besides digits.
        ocr_case_sensitive: OCR similarity compares case.
        default_task_type: task type of rows without a ``task_type``; ``"auto"`` (default)
            infers it from the reference (:func:`~studio.engine.rewards.infer_task_type`):
            boxes → grounding, a lone capital letter → choice, a number → numeric,
            an expression → math, anything else (words) → exact. Free text is never
            handed to the algebra parser.
        max_expr_chars: longer predictions are not parsed as expressions (numbers still are).
        sympy_timeout_s: time limit of one SymPy parse+compare; enforced in a worker
            process, so it also holds when the reward runs in a thread.
    """

    functions: list[str] = dataclasses.field(default_factory=lambda: ["accuracy"])
    extract: str = "box"
    require_box: bool | None = None
    format_bonus: float = 0.0
    iou_threshold: float | None = None
    ref_box_scale: str = "0-1000"
    rel_tol: float = 1e-5
    exact_unordered: bool = False
    count_words: bool = True
    ocr_case_sensitive: bool = False
    default_task_type: str = AUTO
    max_expr_chars: int = 200
    sympy_timeout_s: float = 0.5

    def validate(self) -> None:
        """Raise :class:`~studio.errors.ConfigError` naming the field to change."""
        from studio.engine.rewards.registry import REGISTRY

        check(bool(self.functions), "functions", f"needs at least one of {', '.join(REGISTRY)}.")
        for name in self.functions:
            check(name in REGISTRY, "functions",
                  f"has unknown reward {name!r}; valid names: {', '.join(REGISTRY)}.")
        check(self.extract in EXTRACT_MODES, "extract", "must be box or box_or_answer.")
        check(self.format_bonus >= 0, "format_bonus", "must be 0 or more.")
        check(self.iou_threshold is None or 0 < self.iou_threshold <= 1, "iou_threshold",
              "must be empty (reward = IoU) or in (0, 1].")
        check(self.ref_box_scale in ("0-1000", "pixels"), "ref_box_scale", "must be 0-1000 or pixels.")
        check(0 <= self.rel_tol < 1, "rel_tol", "must be in [0, 1).")
        check(self.default_task_type == AUTO or canonical_task_type(self.default_task_type) is not None,
              "default_task_type", f"must be auto or one of {', '.join(TASK_TYPES)}.")
        check(isinstance(self.exact_unordered, bool), "exact_unordered", "must be true or false.")
        check(self.max_expr_chars >= 1, "max_expr_chars", "must be at least 1.")
        check(0 < self.sympy_timeout_s <= 30, "sympy_timeout_s", "must be in (0, 30] seconds.")

    def settings(self) -> dict[str, Any]:
        """The verifier settings as kwargs (everything but ``functions``)."""
        d = self.to_dict()
        d.pop("functions")
        return d


DEFAULTS: dict[str, Any] = RewardConfig().settings()


def canonical_task_type(task_type: str | None) -> str | None:
    """Map a task type (or alias, any case) to one of :data:`TASK_TYPES`; ``None`` if unknown.

    ``"auto"`` is not a task type here (it is resolved per reference by
    :func:`~studio.engine.rewards.infer_task_type`).

    >>> canonical_task_type("Multiple_Choice"), canonical_task_type("ocr"), canonical_task_type("poem")
    ('choice', 'ocr', None)
    """
    if task_type is None:
        return None
    t = str(task_type).strip().lower()
    t = TASK_ALIASES.get(t, t)
    return t if t in TASK_TYPES else None
