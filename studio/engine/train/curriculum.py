"""Reinforcement Learning with Curriculum Sampling (RLCS): the curriculum state.

Implements steps 2–5 and 8 of ``../shared/RLCS.md`` (GLM-4.1V-Thinking report, arXiv
2507.01006, §5 "Curriculum Sampling" and "dynamic sampling expansion via ratio EMA"):
pass-rate difficulty per prompt, five tiers, tier weights re-computed every step,
expansion of the draw by an EMA of 1/(1−r), selection of the groups closest to half
right, and a per-prompt pass-rate EMA. The report publishes no formula, tier count or
number; the defaults below are ours (RLCS.md) and every one is a setting.

Plain Python + numpy, no model: the trainer (``studio/engine/train/rl.py``) drives it.

Stable API
----------
``CurriculumConfig``  settings (a :class:`~studio.config.YamlConfig`).
``CurriculumState(num_prompts, config)``  prompts are dataset row indices ``0..N-1``.

* ``init_offline(pass_rates, labels=None)`` — offline grades (pass@k share per prompt,
  any subset) blended with optional difficulty labels; ``cold_start`` → every p = 0.5.
* ``draw(batch_size, rng=None, pending=()) -> list[int]`` — the prompts of the next
  rollout: ``draw_size(B)`` of them (``min(ceil(B·ema), max_expansion·B)`` in ``rlcs``
  mode, ``B`` in ``uniform``), tier by weight then uniform within the tier, without
  replacement, never one of ``pending`` (chosen by a prefetch, not yet scored). Fewer
  are returned when fewer are available (possibly none).
* ``select_groups(group_rewards, batch_size) -> Selection`` — after the rollout: keep the
  ``B`` groups with ``|#correct − G/2|`` smallest, zero-variance groups last;
  ``Selection.skip_update`` when no kept group has reward variance.
* ``update(results) -> dict`` — every rolled-out group (kept or not): pass-rate EMA,
  re-tier, ``r`` = share of zero-variance groups, expansion EMA, tier weights, step += 1.
* ``metrics() -> dict`` (``curriculum/...`` names), ``too_easy()`` /
  ``too_easy_message()``, ``tier_of(idx)``, ``tier_weights()``, ``tier_members()``,
  ``pass_rate(idx)``, ``n_seen(idx)``.
* ``to_dict()`` / ``from_dict()`` / ``save(path)`` / ``load(path)`` — exact JSON round
  trip, including the internal random generator, for checkpoints and resume.

Rewards → correctness: a sample counts as correct when its reward ≥
``correct_threshold`` (0.5: binary 0/1 rewards, with or without a small format bonus).
A group has *zero variance* when all its rewards are equal (GRPO gets no gradient from
it): with 0/1 rewards that is "all right or all wrong", RLCS.md's definition of r.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from studio.config import YamlConfig, check
from studio.errors import ConfigError, DataError

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


@dataclasses.dataclass
class Selection:
    """Result of :meth:`CurriculumState.select_groups`.

    Attributes:
        kept: prompt indices whose groups go to the GRPO update, most balanced first
            (``rlcs``) or in rollout order (``uniform``); at most ``batch_size``.
        dropped: the other rolled-out indices.
        zero_variance: every rolled-out index whose group had equal rewards.
        skip_update: no kept group has reward variance — skip the update and log it.
    """

    kept: list[int]
    dropped: list[int]
    zero_variance: list[int]
    skip_update: bool


def _is_zero_variance(rewards: list[float]) -> bool:
    return len(rewards) < 2 or (max(rewards) - min(rewards)) <= 1e-12


class CurriculumState:
    """Per-prompt difficulty, tiers, tier weights and expansion EMA for RLCS.

    Args:
        num_prompts: N; prompts are the dataset row indices ``0..N-1``.
        config: settings (validated here); defaults to :class:`CurriculumConfig`.

    Raises:
        ConfigError: ``num_prompts < 1`` or a bad setting.
    """

    def __init__(self, num_prompts: int, config: CurriculumConfig | None = None):
        self.config = config or CurriculumConfig()
        self.config.validate()
        if int(num_prompts) < 1:
            raise ConfigError("The curriculum needs at least one prompt; the dataset is empty.")
        self.num_prompts = int(num_prompts)
        c = self.config
        self._p = [float(c.initial_pass_rate)] * self.num_prompts
        self._p0 = list(self._p)
        self._n_seen = [0] * self.num_prompts
        self._n_samples = [0] * self.num_prompts
        self._tier = [self._tier_index(p) for p in self._p]
        self.weights: list[float] = self._target_weights()
        self.expansion_ema = 1.0
        self.last_r: float | None = None
        self.last_all_correct_frac: float | None = None
        self.last_all_wrong_frac: float | None = None
        self.step = 0
        self.skipped_updates = 0
        self.batch_size: int | None = None
        self.last_draw_size: int | None = None
        self._recent_all_correct: list[bool] = []
        self._rng = np.random.default_rng(c.seed)

    # ------------------------------------------------------------------ tiers
    @property
    def tier_names(self) -> list[str]:
        """Tier names, hardest first."""
        return list(self.config.tier_names)

    def _tier_index(self, p: float) -> int:
        return bisect.bisect_right(self.config.tier_boundaries, p)

    def _check_idx(self, idx: int) -> int:
        i = int(idx)
        if not 0 <= i < self.num_prompts:
            raise DataError(f"Prompt index {idx} is out of range (the dataset has {self.num_prompts} prompts).")
        return i

    def pass_rate(self, idx: int) -> float:
        """Current pass-rate estimate p of prompt ``idx`` (in [0, 1])."""
        return self._p[self._check_idx(idx)]

    def n_seen(self, idx: int) -> int:
        """How many online rollout groups of prompt ``idx`` were scored."""
        return self._n_seen[self._check_idx(idx)]

    def tier_of(self, idx: int) -> str:
        """Tier name of prompt ``idx``.

        >>> s = CurriculumState(2); s.init_offline({0: 0.0, 1: 0.9}); (s.tier_of(0), s.tier_of(1))
        ('very_hard', 'very_easy')
        """
        return self.config.tier_names[self._tier[self._check_idx(idx)]]

    def tier_members(self) -> dict[str, list[int]]:
        """Prompt indices per tier (every tier present, hardest first)."""
        out: dict[str, list[int]] = {n: [] for n in self.config.tier_names}
        for i, t in enumerate(self._tier):
            out[self.config.tier_names[t]].append(i)
        return out

    def _counts(self) -> list[int]:
        counts = [0] * len(self.config.tier_names)
        for t in self._tier:
            counts[t] += 1
        return counts

    # ------------------------------------------------------------------ weights
    def _target_weights(self) -> list[float]:
        """This step's weights before smoothing.

        ``rlcs``: per non-empty tier ``s = max(4·p̄(1−p̄), floor)`` with p̄ the tier's mean
        pass rate, normalised; empty tiers 0. ``uniform``: each tier's share of prompts
        (the actual draw probability of a uniform draw).
        """
        counts = self._counts()
        if self.config.mode == "uniform":
            return [c / self.num_prompts for c in counts]
        sums = [0.0] * len(counts)
        for p, t in zip(self._p, self._tier):
            sums[t] += p
        scores = []
        for s, c in zip(sums, counts):
            if c == 0:
                scores.append(0.0)
            else:
                pbar = s / c
                scores.append(max(4.0 * pbar * (1.0 - pbar), self.config.weight_floor))
        total = sum(scores)
        if total <= 0:  # floor 0 and every non-empty tier at p̄ ∈ {0, 1}: draw by count
            return [c / self.num_prompts for c in counts]
        return [s / total for s in scores]

    def _update_weights(self) -> None:
        new = self._target_weights()
        lam = self.config.weight_smoothing if self.config.mode == "rlcs" else 0.0
        w = [lam * o + (1.0 - lam) * n for o, n in zip(self.weights, new)]
        counts = self._counts()
        w = [x if c > 0 else 0.0 for x, c in zip(w, counts)]  # an emptied tier is not drawn
        total = sum(w)
        self.weights = [x / total for x in w] if total > 0 else new

    def tier_weights(self) -> dict[str, float]:
        """Sampling weight per tier (sums to 1; 0 for empty tiers).

        >>> s = CurriculumState(3); s.init_offline({0: 0.5, 1: 0.5, 2: 1.0})
        >>> {k: round(v, 3) for k, v in s.tier_weights().items() if v}
        {'medium': 0.952, 'very_easy': 0.048}
        """
        return dict(zip(self.config.tier_names, self.weights))

    # ------------------------------------------------------------------ offline
    def init_offline(self, pass_rates: Mapping[int, float] | None = None,
                     labels: Mapping[int, Any] | None = None) -> None:
        """Set each prompt's starting pass rate p0 and reset the tier weights.

        Args:
            pass_rates: offline grades, ``{idx: share of k samples correct}`` (any subset).
            labels: user difficulty labels, ``{idx: label}`` (see :func:`label_prior`).

        With ``cold_start`` every p = ``initial_pass_rate`` (grades and labels ignored).
        Otherwise a prompt with grade g and label prior q gets ``(1−w)·g + w·q``
        (``w = label_weight``), with only one of them that one, with neither
        ``initial_pass_rate``. Online counts are not touched.

        Raises:
            DataError: an index out of range, a grade outside [0, 1], an unknown label.

        >>> s = CurriculumState(3); s.init_offline({0: 1.0, 1: 0.0}, labels={0: "hard", 2: 5})
        >>> [round(s.pass_rate(i), 4) for i in range(3)]
        [0.775, 0.0, 0.0625]
        """
        c = self.config
        grades = {self._check_idx(i): float(v) for i, v in (pass_rates or {}).items()}
        for i, g in grades.items():
            if not (0.0 <= g <= 1.0) or math.isnan(g):
                raise DataError(f"Offline pass rate of prompt {i} is {g}; pass rates are in [0, 1].")
        priors = {}
        scale = c.label_scale or label_scale((labels or {}).values())
        for i, lab in (labels or {}).items():
            q = label_prior(lab, {**DEFAULT_LABEL_PRIORS, **c.label_priors}, scale=scale)
            if q is not None:
                priors[self._check_idx(i)] = q
        for i in range(self.num_prompts):
            if c.cold_start:
                p = c.initial_pass_rate
            elif i in grades and i in priors:
                p = (1.0 - c.label_weight) * grades[i] + c.label_weight * priors[i]
            elif i in grades:
                p = grades[i]
            elif i in priors:
                p = priors[i]
            else:
                p = c.initial_pass_rate
            self._p[i] = float(p)
            self._p0[i] = float(p)
            self._tier[i] = self._tier_index(p)
        self.weights = self._target_weights()

    # ------------------------------------------------------------------ draw
    def draw_size(self, batch_size: int) -> int:
        """Prompts to roll out for ``batch_size`` kept groups.

        ``rlcs``: ``min(ceil(B·ema), floor(max_expansion·B))``; ``uniform``: ``B``.

        >>> s = CurriculumState(10); s.expansion_ema = 1.3; s.draw_size(4)
        6
        """
        b = int(batch_size)
        if b < 1:
            raise ConfigError(f"Batch size must be at least 1 (got {batch_size}).")
        if self.config.mode == "uniform":
            return b
        want = math.ceil(b * self.expansion_ema - 1e-9)
        return max(b, min(want, int(math.floor(self.config.max_expansion * b + 1e-9))))

    def _generator(self, rng: Any) -> np.random.Generator:
        if rng is None:
            return self._rng
        if isinstance(rng, np.random.Generator):
            return rng
        if isinstance(rng, (int, np.integer)):
            return np.random.default_rng(int(rng))
        raise ConfigError(f"rng must be a numpy Generator, an int seed or None (got {type(rng).__name__}).")

    def draw(self, batch_size: int, rng: Any = None, pending: Iterable[int] = ()) -> list[int]:
        """Choose the prompts of the next rollout.

        Args:
            batch_size: B, the number of groups the GRPO update wants.
            rng: a ``numpy.random.Generator``, an int seed, or ``None`` for the state's
                own generator (saved with the state, so a resumed run continues it).
            pending: indices chosen earlier but not yet scored (never returned).

        Returns:
            ``min(draw_size(B), #available)`` distinct indices. ``rlcs``: each pick
            chooses a tier with probability ∝ its weight among tiers that still have
            available prompts, then a prompt uniformly within the tier. ``uniform``:
            a uniform sample without replacement.

        >>> s = CurriculumState(5); sorted(s.draw(3, rng=0, pending=[0, 1]))
        [2, 3, 4]
        """
        n = self.draw_size(batch_size)
        gen = self._generator(rng)
        pend = {int(i) for i in pending}
        self.batch_size = int(batch_size)
        if self.config.mode == "uniform":
            avail = [i for i in range(self.num_prompts) if i not in pend]
            k = min(n, len(avail))
            out = [avail[j] for j in gen.choice(len(avail), size=k, replace=False)] if k else []
        else:
            pools = [[] for _ in self.config.tier_names]
            for i, t in enumerate(self._tier):
                if i not in pend:
                    pools[t].append(i)
            k = min(n, sum(len(p) for p in pools))
            out = []
            for _ in range(k):
                live = [t for t, pool in enumerate(pools) if pool]
                w = [self.weights[t] for t in live]
                if sum(w) <= 0:
                    w = [float(len(pools[t])) for t in live]
                u, t = gen.random() * sum(w), live[-1]
                for cand, wt in zip(live, w):  # inverse-CDF pick of a tier
                    if u < wt:
                        t = cand
                        break
                    u -= wt
                out.append(pools[t].pop(int(gen.integers(len(pools[t])))))
        self.last_draw_size = len(out)
        return [int(i) for i in out]

    # ------------------------------------------------------------------ select
    def select_groups(self, group_rewards: Mapping[int, list[float]], batch_size: int) -> Selection:
        """Keep the ``batch_size`` most informative rolled-out groups.

        Args:
            group_rewards: ``{idx: [reward of each of the G samples]}`` in rollout order.
            batch_size: B.

        ``rlcs``: order by (zero variance last, ``|#correct − G/2|``, larger reward std,
        rollout order) and keep the first B. ``uniform``: keep the first B in rollout
        order (the draw already has B). Does not change the state.

        >>> s = CurriculumState(4)
        >>> sel = s.select_groups({0: [1, 1, 1, 1], 1: [1, 0, 0, 0], 2: [1, 1, 0, 0], 3: [0, 0, 0, 0]}, 2)
        >>> sel.kept, sel.zero_variance, sel.skip_update
        ([2, 1], [0, 3], False)
        """
        b = int(batch_size)
        if b < 1:
            raise ConfigError(f"Batch size must be at least 1 (got {batch_size}).")
        thr = self.config.correct_threshold
        rows = []
        for order, (idx, rs) in enumerate(group_rewards.items()):
            rs = [float(r) for r in rs]
            zv = _is_zero_variance(rs)
            g = len(rs)
            correct = sum(r >= thr for r in rs)
            rows.append(((zv, abs(correct - g / 2.0), -float(np.std(rs)) if rs else 0.0, order), int(idx), zv))
        if self.config.mode == "rlcs":
            rows.sort(key=lambda r: r[0])
        kept = [r[1] for r in rows[:b]]
        dropped = [r[1] for r in rows[b:]]
        zero_var = [r[1] for r in sorted(rows, key=lambda r: r[0][3]) if r[2]]
        skip = not kept or all(r[2] for r in rows[:b])
        return Selection(kept=kept, dropped=dropped, zero_variance=zero_var, skip_update=skip)

    # ------------------------------------------------------------------ update
    def update(self, results: Mapping[int, list[float]]) -> dict[str, float]:
        """Fold one rollout's rewards into the state (call with *every* rolled-out group).

        For each prompt: ``p ← (1−α)·p + α·p_new`` (α = ``pass_rate_alpha``, p_new = the
        group's share of correct samples) and re-tier. Then ``r`` = share of groups with
        zero reward variance, ``ema ← λ·ema + (1−λ)/(1 − min(r, cap))``, tier weights
        re-computed and smoothed, ``step += 1``.

        Returns:
            ``{"r", "all_correct_frac", "all_wrong_frac", "expansion_ema"}`` of this step.

        Raises:
            DataError: empty ``results``, an index out of range, or a group without rewards.
        """
        if not results:
            raise DataError("Curriculum update got no rollout groups.")
        c = self.config
        a = c.pass_rate_alpha
        n_zero = n_all_right = n_all_wrong = 0
        for idx, rs in results.items():
            i = self._check_idx(idx)
            rs = [float(r) for r in rs]
            if not rs:
                raise DataError(f"Rollout group of prompt {i} has no rewards.")
            ok = [r >= c.correct_threshold for r in rs]
            p_new = sum(ok) / len(ok)
            self._p[i] = (1.0 - a) * self._p[i] + a * p_new
            self._n_seen[i] += 1
            self._n_samples[i] += len(rs)
            self._tier[i] = self._tier_index(self._p[i])
            n_zero += _is_zero_variance(rs)
            n_all_right += all(ok)
            n_all_wrong += not any(ok)
        n = len(results)
        r = n_zero / n
        self.last_r = r
        self.last_all_correct_frac = n_all_right / n
        self.last_all_wrong_frac = n_all_wrong / n
        ratio = 1.0 / (1.0 - min(r, c.expansion_r_cap))
        lam = c.expansion_smoothing
        self.expansion_ema = lam * self.expansion_ema + (1.0 - lam) * ratio
        if n_zero == n:
            self.skipped_updates += 1
        self._recent_all_correct.append(n_all_right == n)
        self._recent_all_correct = self._recent_all_correct[-c.too_easy_patience:]
        self.step += 1
        self._update_weights()
        return {"r": r, "all_correct_frac": self.last_all_correct_frac,
                "all_wrong_frac": self.last_all_wrong_frac, "expansion_ema": self.expansion_ema}

    def too_easy(self) -> bool:
        """Every group of the last ``too_easy_patience`` updates was all-correct."""
        k = self.config.too_easy_patience
        return len(self._recent_all_correct) >= k and all(self._recent_all_correct[-k:])

    def too_easy_message(self) -> str:
        """What the trainer tells the user when :meth:`too_easy` stops the run."""
        k = self.config.too_easy_patience
        n_easy = len(self.tier_members()[self.config.tier_names[-1]])
        return (f"Every rollout group in the last {k} steps was all-correct ({n_easy} of "
                f"{self.num_prompts} prompts are {self.config.tier_names[-1]}): GRPO gets no "
                "gradient from them. Add harder prompts or stop here; training was stopped "
                "instead of burning steps.")

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, float | None]:
        """Curves for the RL tab (``None`` where there is nothing to report yet).

        Keys: ``curriculum/tier_weight/<tier>``, ``curriculum/tier_count/<tier>``,
        ``curriculum/tier_pass_rate/<tier>`` (mean p, ``None`` for an empty tier),
        ``curriculum/zero_variance_frac`` (last r, uncapped),
        ``curriculum/all_correct_frac``, ``curriculum/all_wrong_frac``,
        ``curriculum/expansion_ema``, ``curriculum/effective_batch`` (prompts in the last
        draw), ``curriculum/next_draw_size``, ``curriculum/mean_pass_rate``,
        ``curriculum/skipped_updates``, ``curriculum/step``.

        >>> sorted(CurriculumState(2).metrics())[:2]
        ['curriculum/all_correct_frac', 'curriculum/all_wrong_frac']
        """
        out: dict[str, float | None] = {}
        counts = self._counts()
        sums = [0.0] * len(counts)
        for p, t in zip(self._p, self._tier):
            sums[t] += p
        for name, w, cnt, s in zip(self.config.tier_names, self.weights, counts, sums):
            out[f"curriculum/tier_weight/{name}"] = float(w)
            out[f"curriculum/tier_count/{name}"] = float(cnt)
            out[f"curriculum/tier_pass_rate/{name}"] = (s / cnt) if cnt else None
        out["curriculum/zero_variance_frac"] = self.last_r
        out["curriculum/all_correct_frac"] = self.last_all_correct_frac
        out["curriculum/all_wrong_frac"] = self.last_all_wrong_frac
        out["curriculum/expansion_ema"] = float(self.expansion_ema)
        out["curriculum/effective_batch"] = None if self.last_draw_size is None else float(self.last_draw_size)
        out["curriculum/next_draw_size"] = (None if self.batch_size is None
                                            else float(self.draw_size(self.batch_size)))
        out["curriculum/mean_pass_rate"] = float(sum(self._p) / self.num_prompts)
        out["curriculum/skipped_updates"] = float(self.skipped_updates)
        out["curriculum/step"] = float(self.step)
        return out

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot; :meth:`from_dict` restores it exactly (rng included)."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "num_prompts": self.num_prompts,
            "pass_rate": list(self._p),
            "offline_pass_rate": list(self._p0),
            "n_seen": list(self._n_seen),
            "n_samples": list(self._n_samples),
            "weights": list(self.weights),
            "expansion_ema": self.expansion_ema,
            "last_r": self.last_r,
            "last_all_correct_frac": self.last_all_correct_frac,
            "last_all_wrong_frac": self.last_all_wrong_frac,
            "step": self.step,
            "skipped_updates": self.skipped_updates,
            "batch_size": self.batch_size,
            "last_draw_size": self.last_draw_size,
            "recent_all_correct": list(self._recent_all_correct),
            "rng_state": self._rng.bit_generator.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], num_prompts: int | None = None) -> CurriculumState:
        """Rebuild a state saved by :meth:`to_dict`.

        Args:
            data: the snapshot.
            num_prompts: if given, the dataset's size; a mismatch raises (resume with the
                same data).

        Raises:
            DataError: unknown version, inconsistent lengths, or a dataset-size mismatch.
        """
        try:
            if data.get("version") != STATE_VERSION:
                raise DataError(f"Curriculum state version {data.get('version')!r} is not "
                                f"supported (expected {STATE_VERSION}).")
            n = int(data["num_prompts"])
            if num_prompts is not None and int(num_prompts) != n:
                raise DataError(f"The checkpoint's curriculum covers {n} prompts but the dataset has "
                                f"{num_prompts}; resume with the same dataset or start a new run.")
            s = cls(n, CurriculumConfig.from_dict(data["config"]))
            for key in ("pass_rate", "offline_pass_rate", "n_seen", "n_samples"):
                if len(data[key]) != n:
                    raise DataError(f"Curriculum state field {key} has {len(data[key])} values for {n} prompts.")
            s._p = [float(x) for x in data["pass_rate"]]
            s._p0 = [float(x) for x in data["offline_pass_rate"]]
            s._n_seen = [int(x) for x in data["n_seen"]]
            s._n_samples = [int(x) for x in data["n_samples"]]
            s._tier = [s._tier_index(p) for p in s._p]
            s.weights = [float(x) for x in data["weights"]]
            if len(s.weights) != len(s.config.tier_names):
                raise DataError("Curriculum state has a weight per tier count that does not match its tiers.")
            s.expansion_ema = float(data["expansion_ema"])
            s.last_r = data["last_r"]
            s.last_all_correct_frac = data["last_all_correct_frac"]
            s.last_all_wrong_frac = data["last_all_wrong_frac"]
            s.step = int(data["step"])
            s.skipped_updates = int(data["skipped_updates"])
            s.batch_size = data["batch_size"]
            s.last_draw_size = data["last_draw_size"]
            s._recent_all_correct = [bool(x) for x in data["recent_all_correct"]]
            s._rng.bit_generator.state = data["rng_state"]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"Curriculum state is incomplete or malformed ({e!r}); "
                            "start a new run or resume from another checkpoint.") from None
        return s

    def save(self, path: str | Path) -> Path:
        """Write the state as JSON (atomically) to ``path``; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path, num_prompts: int | None = None) -> CurriculumState:
        """Read a state written by :meth:`save`.

        Raises:
            DataError: missing or unreadable file, or see :meth:`from_dict`.
        """
        p = Path(path)
        if not p.is_file():
            raise DataError(f"Curriculum state {p} does not exist; resume from a checkpoint that has one.")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"Curriculum state {p} is not readable JSON ({e}).") from None
        if not isinstance(data, dict):
            raise DataError(f"Curriculum state {p} does not hold a JSON object.")
        return cls.from_dict(data, num_prompts=num_prompts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CurriculumState) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        counts = dict(zip(self.config.tier_names, self._counts()))
        return (f"CurriculumState(mode={self.config.mode!r}, prompts={self.num_prompts}, step={self.step}, "
                f"tiers={counts}, ema={self.expansion_ema:.3f})")
