"""Curriculum settings and difficulty labels: :class:`CurriculumConfig`, the tier names, and the
label → pass-rate priors (:func:`label_scale`, :func:`label_prior`). The state that uses them is
:class:`studio.engine.train.curriculum.CurriculumState`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from studio.config import YamlConfig, check
from studio.errors import DataError


TIER_NAMES = ("very_hard", "hard", "medium", "easy", "very_easy")
MODES = ("rlcs", "uniform")
STATE_VERSION = 1

#: Difficulty label → pass-rate prior (the middle of the matching default tier).
#: Numbers 1–5 mean 1 = easiest … 5 = hardest.
DEFAULT_LABEL_PRIORS = {
    "very_easy": 0.9375, "easy": 0.75, "medium": 0.5, "hard": 0.25, "very_hard": 0.0625,
}
_LEVELS = ("very_easy", "easy", "medium", "hard", "very_hard")  # 1..5
#: Numbers 1–3 (1 = easiest, as the workshop task generator writes them).
_LEVELS3 = ("easy", "medium", "hard")


@dataclasses.dataclass
class CurriculumConfig(YamlConfig):
    """RLCS settings (the ``curriculum:`` block of an RL config).

    Attributes:
        mode: ``"rlcs"`` (curriculum) or ``"uniform"`` (baseline: uniform draw of ``B``
            prompts, no expansion, no selection; statistics still tracked so the curves
            compare).
        tier_boundaries: pass-rate cut points, increasing in (0, 1); tier ``i`` holds
            ``boundaries[i-1] <= p < boundaries[i]``.
        tier_names: one name per tier, hardest first (``len(boundaries) + 1`` names).
        weight_floor: minimum score of a non-empty tier before normalising.
        weight_smoothing: share of the *previous* weights: ``w = 0.7·w_old + 0.3·w_new``.
        expansion_r_cap: r is capped here before ``1/(1−r)`` (0.8 → ratio ≤ 5).
        expansion_smoothing: share of the *previous* EMA: ``ema = 0.7·ema + 0.3·ratio``.
        max_expansion: at most ``floor(max_expansion·B)`` prompts per draw.
        pass_rate_alpha: weight of the *new* pass rate: ``p = 0.5·p + 0.5·p_new``.
        correct_threshold: a sample is correct when its reward is at least this.
        offline_grading: grade every prompt before training (k samples each) — done by
            the trainer, which then calls :meth:`CurriculumState.init_offline`.
        offline_samples: k, samples per prompt for offline grading.
        cold_start: skip grading and labels: every p = ``initial_pass_rate``.
        label_weight: weight of a difficulty label's prior when blended with an offline
            grade: ``p0 = (1−w)·graded + w·prior`` (a label alone gives the prior).
        label_priors: pass-rate prior per label name; merged over
            :data:`DEFAULT_LABEL_PRIORS`, so a YAML may override one name or add one.
        label_scale: scale of numeric labels: 5 (1 very easy … 5 very hard), 3 (1 easy,
            2 medium, 3 hard — the workshop tasks), or 0 = auto (3 when every numeric label
            given is 1–3, else 5).
        initial_pass_rate: p of a prompt with neither grade nor label.
        too_easy_patience: :meth:`CurriculumState.too_easy` after this many consecutive
            updates in which every group was all-correct.
        seed: seed of the state's own random generator (used when ``draw`` gets no rng).
        group_by: row columns whose values put prompts in one group (e.g. ``[family,
            difficulty]``; empty: off). A prompt that no rollout has scored yet takes its
            group's pass rate *learned online* from the training rollouts of the group's
            other prompts (after ``group_min_samples`` samples), blended with its own
            start value by ``group_weight``. Why: in a short run most prompts are never
            drawn, so their pass rates would stay at the grade or label they started
            with; a group's rate needs no grading rollouts (GLM-4.1V report §5 / RLCS:
            online pass rates and difficulty labels instead of offline grading).
        group_min_samples: samples a group needs before its rate is used.
        group_weight: weight of the group rate for an unscored prompt: ``p = (1−w)·p0 + w·group``.
    """

    mode: str = "rlcs"
    tier_boundaries: list[float] = dataclasses.field(default_factory=lambda: [0.125, 0.375, 0.625, 0.875])
    tier_names: list[str] = dataclasses.field(default_factory=lambda: list(TIER_NAMES))
    weight_floor: float = 0.05
    weight_smoothing: float = 0.7
    expansion_r_cap: float = 0.8
    expansion_smoothing: float = 0.7
    max_expansion: float = 2.0
    pass_rate_alpha: float = 0.5
    correct_threshold: float = 0.5
    offline_grading: bool = True
    offline_samples: int = 4
    cold_start: bool = False
    label_weight: float = 0.3
    label_priors: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_LABEL_PRIORS))
    label_scale: int = 0
    initial_pass_rate: float = 0.5
    too_easy_patience: int = 3
    seed: int = 0
    group_by: list[str] = dataclasses.field(default_factory=list)
    group_min_samples: int = 16
    group_weight: float = 1.0

    def validate(self) -> None:
        check(self.mode in MODES, "mode", f"must be rlcs or uniform (got {self.mode!r}).")
        b = list(self.tier_boundaries)
        check(len(b) >= 1 and all(0 < x < 1 for x in b) and all(x < y for x, y in zip(b, b[1:])),
              "tier_boundaries", "must be increasing numbers strictly between 0 and 1.")
        check(len(self.tier_names) == len(b) + 1, "tier_names",
              f"needs {len(b) + 1} names for {len(b)} boundaries.")
        check(len(set(self.tier_names)) == len(self.tier_names) and all(
            n and "/" not in n for n in self.tier_names), "tier_names", "must be distinct, non-empty, without '/'.")
        check(0 <= self.weight_floor < 1, "weight_floor", "must be in [0, 1).")
        check(0 <= self.weight_smoothing < 1, "weight_smoothing", "must be in [0, 1).")
        check(0 <= self.expansion_r_cap < 1, "expansion_r_cap", "must be in [0, 1).")
        check(0 <= self.expansion_smoothing < 1, "expansion_smoothing", "must be in [0, 1).")
        check(self.max_expansion >= 1, "max_expansion", "must be at least 1.")
        check(0 < self.pass_rate_alpha <= 1, "pass_rate_alpha", "must be in (0, 1].")
        check(self.offline_samples >= 1, "offline_samples", "must be at least 1.")
        check(0 <= self.label_weight <= 1, "label_weight", "must be in [0, 1].")
        check(self.label_scale in (0, 3, 5), "label_scale", "must be 0 (auto), 3 or 5.")
        check(isinstance(self.label_priors, dict), "label_priors", "must map label names to pass rates.")
        for name, v in self.label_priors.items():
            check(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1, "label_priors",
                  f"value of {name!r} must be a pass rate in [0, 1] (got {v!r}).")
        check(0 <= self.initial_pass_rate <= 1, "initial_pass_rate", "must be in [0, 1].")
        check(self.too_easy_patience >= 1, "too_easy_patience", "must be at least 1.")
        check(isinstance(self.group_by, list) and all(isinstance(c, str) and c for c in self.group_by),
              "group_by", "must be a list of column names, e.g. [family, difficulty].")
        check(self.group_min_samples >= 1, "group_min_samples", "must be at least 1.")
        check(0 <= self.group_weight <= 1, "group_weight", "must be in [0, 1].")


def label_scale(labels) -> int:
    """3 when every numeric label is 1, 2 or 3 (a 3-level scale), else 5.

    >>> label_scale([1, 3, "2", "hard"]), label_scale([1, 5]), label_scale(["easy"])
    (3, 5, 5)
    """
    nums = []
    for lab in labels:
        if isinstance(lab, bool):
            continue
        if isinstance(lab, (int, float)) and not (isinstance(lab, float) and math.isnan(lab)):
            nums.append(lab)
        elif isinstance(lab, str) and lab.strip().isdigit():
            nums.append(int(lab.strip()))
    return 3 if nums and all(n in (1, 2, 3) for n in nums) else 5


def label_prior(label: Any, priors: Mapping[str, float] | None = None, scale: int = 5) -> float | None:
    """Pass-rate prior of a user difficulty label; ``None`` for no label.

    Accepts ``very_easy``/``easy``/``medium``/``hard``/``very_hard`` (any case, ``-`` or
    space for ``_``), other keys of ``priors``, or numbers 1–``scale`` (1 = easiest) as int
    or string: on a 5-level scale 1…5 are very easy … very hard, on a 3-level scale
    1…3 are easy, medium, hard (see :func:`label_scale`).

    Raises:
        DataError: a label it does not know.

    >>> label_prior("Hard"), label_prior(1), label_prior("3"), label_prior(None)
    (0.25, 0.9375, 0.5, None)
    >>> label_prior(1, scale=3), label_prior(3, scale=3)
    (0.75, 0.25)
    """
    priors = dict(DEFAULT_LABEL_PRIORS if priors is None else priors)
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return None
    if isinstance(label, str):
        key = label.strip().lower().replace("-", "_").replace(" ", "_")
        if not key:
            return None
        if key in priors:
            return float(priors[key])
        if key.isdigit():
            label = int(key)
    if isinstance(label, (int, float)) and not isinstance(label, bool) and float(label) == int(label) \
            and 1 <= int(label) <= scale:
        name = (_LEVELS3 if scale == 3 else _LEVELS)[int(label) - 1]
        if name in priors:
            return float(priors[name])
    raise DataError(
        f"Unknown difficulty label {label!r}; use {', '.join(priors)} or 1–{scale} (1 = easiest)."
    )
