"""Reinforcement Learning with Curriculum Sampling (RLCS): the curriculum state.

Implements steps 2–5 and 8 of ``docs/RLCS.md`` (GLM-4.1V-Thinking report, arXiv
2507.01006, §5 "Curriculum Sampling" and "dynamic sampling expansion via ratio EMA"):
pass-rate difficulty per prompt, five tiers, tier weights re-computed every step,
expansion of the draw by an EMA of 1/(1−r), selection of the groups closest to half
right, and a per-prompt pass-rate EMA. The report publishes no formula, tier count or
number; the defaults below are ours (RLCS.md) and every one is a setting.

Plain Python + numpy, no model: the trainer (``studio/engine/train/rl/``) drives it.

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

from studio.engine.train.curriculum_config import (  # noqa: F401 - re-exported: this module's API as before
    DEFAULT_LABEL_PRIORS, MODES, STATE_VERSION, TIER_NAMES, CurriculumConfig, label_prior, label_scale)
from studio.engine.train.curriculum_groups import GroupPool, group_key  # noqa: F401 - group_key re-exported
from studio.errors import ConfigError, DataError

#: The label functions' examples still run with this module's (``doctest.testmod``).
__test__ = {"label_scale": label_scale, "label_prior": label_prior}
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
        self._pool = GroupPool(self.num_prompts)

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

    # ------------------------------------------------------------------ groups
    def set_groups(self, groups: Mapping[int, Any]) -> None:
        """Give prompts a group key, ``{idx: key}`` (``CurriculumConfig.group_by``; no key: not pooled)."""
        for i, g in groups.items():
            self._pool.keys[self._check_idx(i)] = None if g is None else str(g)

    def group_of(self, idx: int) -> str | None:
        """The group key of prompt ``idx`` (None: not pooled)."""
        return self._pool.keys[self._check_idx(idx)]

    def group_pass_rates(self) -> dict[str, float]:
        """Online pass rate per group with ``group_min_samples`` samples (:class:`GroupPool`)."""
        return self._pool.rates(self.config.group_min_samples)

    def _apply_groups(self) -> None:
        """Unscored prompts of a group with enough samples take the blended group rate."""
        rates, w = self.group_pass_rates(), self.config.group_weight
        for i, g in enumerate(self._pool.keys):
            if g in rates and self._n_seen[i] == 0:
                self._p[i] = (1.0 - w) * self._p0[i] + w * rates[g]
                self._tier[i] = self._tier_index(self._p[i])

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
            self._pool.add(i, sum(ok), len(ok))
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
        self._apply_groups()
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
        for g, rate in self.group_pass_rates().items():
            out[f"curriculum/group_pass_rate/{g}"] = rate
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
            **self._pool.to_dict(),
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
            s._pool = GroupPool.from_dict(data, n)
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
