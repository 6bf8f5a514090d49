"""RLCS curriculum state: scripted pass-rate sequences, exact numbers from RLCS.md's defaults."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

from studio.engine.train import curriculum as C
from studio.engine.train.curriculum import CurriculumConfig, CurriculumState
from studio.errors import ConfigError, DataError

RIGHT, WRONG = [1.0] * 4, [0.0] * 4


def mixed(k: int, g: int = 4) -> list[float]:
    """A group of ``g`` rewards with ``k`` correct."""
    return [1.0] * k + [0.0] * (g - k)


# ----------------------------------------------------------------------------- tiers
@pytest.mark.parametrize("p,tier", [
    (0.0, "very_hard"), (0.1249, "very_hard"), (0.125, "hard"), (0.3749, "hard"), (0.375, "medium"),
    (0.5, "medium"), (0.625, "easy"), (0.8749, "easy"), (0.875, "very_easy"), (1.0, "very_easy"),
])
def test_tier_boundaries(p, tier):
    s = CurriculumState(1)
    s.init_offline({0: p})
    assert s.tier_of(0) == tier


def test_tiers_move_with_scripted_pass_rates():
    s = CurriculumState(2)
    s.init_offline({0: 0.0, 1: 1.0})
    seq0, seq1 = [], []
    # Prompt 0 becomes solvable, prompt 1 starts failing: EMA with weight 0.5 on the new value.
    for _ in range(4):
        s.update({0: RIGHT, 1: WRONG})
        seq0.append((s.pass_rate(0), s.tier_of(0)))
        seq1.append((s.pass_rate(1), s.tier_of(1)))
    assert seq0 == [(0.5, "medium"), (0.75, "easy"), (0.875, "very_easy"), (0.9375, "very_easy")]
    assert seq1 == [(0.5, "medium"), (0.25, "hard"), (0.125, "hard"), (0.0625, "very_hard")]
    assert s.n_seen(0) == 4 and s.step == 4
    # A half-right group pulls p towards 0.5.
    s.update({1: mixed(2)})
    assert s.pass_rate(1) == pytest.approx(0.28125) and s.tier_of(1) == "hard"
    assert s.tier_members() == {"very_hard": [], "hard": [1], "medium": [], "easy": [], "very_easy": [0]}


# ----------------------------------------------------------------------------- weights
def test_weights_favour_the_middle_tiers():
    mids = [0.0625, 0.25, 0.5, 0.75, 0.9375]
    s = CurriculumState(50)
    s.init_offline({i: mids[i % 5] for i in range(50)})
    w = s.tier_weights()
    scores = [4 * p * (1 - p) for p in mids]  # 0.234375, 0.75, 1, 0.75, 0.234375
    expected = [x / sum(scores) for x in scores]
    assert list(w.values()) == pytest.approx(expected)
    assert w["hard"] == pytest.approx(w["easy"]) and w["very_hard"] == pytest.approx(w["very_easy"])
    assert w["medium"] > w["hard"] > w["very_hard"]
    assert w["medium"] == pytest.approx(1 / 2.96875)
    assert sum(w.values()) == pytest.approx(1.0)


def test_floor_keeps_solved_and_unsolved_tiers_alive():
    s = CurriculumState(3)
    s.init_offline({0: 0.0, 1: 0.5, 2: 1.0})
    w = s.tier_weights()
    assert w["very_hard"] == pytest.approx(0.05 / 1.1)
    assert w["medium"] == pytest.approx(1.0 / 1.1)
    assert w["very_easy"] == pytest.approx(0.05 / 1.1)
    assert w["hard"] == w["easy"] == 0.0  # empty tiers are never drawn


def test_weight_smoothing_is_70_old_30_new():
    s = CurriculumState(3)
    s.init_offline({0: 0.5, 1: 0.0, 2: 0.0})
    old = s.tier_weights()
    assert old["medium"] == pytest.approx(1 / 1.05) and old["very_hard"] == pytest.approx(0.05 / 1.05)
    s.update({1: mixed(2)})  # p1: 0 → 0.25 (hard); very_hard keeps prompt 2
    new_target = {"very_hard": 0.05 / 1.8, "hard": 0.75 / 1.8, "medium": 1.0 / 1.8}
    w = s.tier_weights()
    for t in new_target:
        assert w[t] == pytest.approx(0.7 * old[t] + 0.3 * new_target[t]), t
    assert sum(w.values()) == pytest.approx(1.0)


def test_emptied_tier_gets_no_weight_and_rest_renormalises():
    s = CurriculumState(2)
    s.init_offline({0: 0.5, 1: 0.0})
    old = s.tier_weights()
    s.update({1: mixed(2)})  # very_hard is now empty
    w = s.tier_weights()
    assert w["very_hard"] == 0.0
    raw = {"hard": 0.3 * 0.75 / 1.75, "medium": 0.7 * old["medium"] + 0.3 * 1.0 / 1.75}
    total = sum(raw.values())
    assert w["hard"] == pytest.approx(raw["hard"] / total)
    assert w["medium"] == pytest.approx(raw["medium"] / total)


def test_draw_follows_tier_weights():
    s = CurriculumState(100)
    s.init_offline({i: (0.5 if i < 50 else 1.0) for i in range(100)})
    rng = np.random.default_rng(1)
    picks = [s.draw(1, rng=rng)[0] for _ in range(4000)]
    frac_medium = np.mean([i < 50 for i in picks])
    assert frac_medium == pytest.approx(1 / 1.05, abs=0.015)


# ----------------------------------------------------------------------------- expansion
def test_expansion_ema_follows_inverse_one_minus_r():
    s = CurriculumState(10)
    s.init_offline({i: 0.5 for i in range(10)})
    # r = share of zero-variance groups in the rollout: 0, 0.5, 0.9 (capped 0.8), 1.0 (capped), 0.2
    script = [0, 5, 9, 10, 2]
    ema, expected_ema = 1.0, []
    for k in script:
        r = k / 10
        ema = 0.7 * ema + 0.3 / (1 - min(r, 0.8))
        expected_ema.append(ema)
    assert expected_ema == pytest.approx([1.0, 1.3, 2.41, 3.187, 2.60590])
    got_ema, got_r, sizes = [], [], []
    for k in script:
        res = {i: (RIGHT if i < k // 2 else WRONG if i < k else mixed(2)) for i in range(10)}
        out = s.update(res)
        got_ema.append(s.expansion_ema)
        got_r.append(s.last_r)
        sizes.append(s.draw_size(4))
        assert out["r"] == k / 10 and out["expansion_ema"] == s.expansion_ema
    assert got_ema == pytest.approx(expected_ema)
    assert got_r == [0.0, 0.5, 0.9, 1.0, 0.2]  # the metric is r itself; the cap only feeds the ratio
    # draw min(ceil(B·ema), 2B) with B = 4: ceil(4.0)=4, ceil(5.2)=6, ceil(9.64)→8, ceil(12.7)→8, ceil(10.4)→8
    assert sizes == [4, 6, 8, 8, 8]
    assert len(s.draw(4, rng=0)) == 8
    assert s.metrics()["curriculum/effective_batch"] == 8.0
    assert s.skipped_updates == 1  # the all-zero-variance step


def test_draw_size_ceil_and_cap():
    s = CurriculumState(100)
    for ema, b, want in [(1.0, 8, 8), (1.01, 8, 9), (1.25, 8, 10), (1.9, 8, 16), (4.9, 8, 16), (1.5, 1, 2)]:
        s.expansion_ema = ema
        assert s.draw_size(b) == want, (ema, b)
    with pytest.raises(ConfigError):
        s.draw_size(0)


# ----------------------------------------------------------------------------- selection
def test_selection_keeps_most_balanced_groups():
    s = CurriculumState(8)
    groups = {
        0: RIGHT,            # zero variance
        1: mixed(1),         # |1-2| = 1
        2: mixed(2),         # 0
        3: WRONG,            # zero variance
        4: mixed(3),         # 1
        5: [1.0, 0.0, 1.0, 0.0],  # 0
        6: [0.5, 0.5, 0.5, 0.5],  # zero variance, fractional rewards
        7: [1.0, 0.9, 0.0, 0.0],  # 2 correct, 0 from centre
    }
    sel = s.select_groups(groups, 4)
    assert sorted(sel.kept[:3]) == [2, 5, 7]      # the three |c - G/2| = 0 groups first
    assert sel.kept[3] in (1, 4)
    assert set(sel.kept + sel.dropped) == set(groups) and len(sel.dropped) == 4
    assert sel.zero_variance == [0, 3, 6]
    assert not sel.skip_update
    # Selection never keeps a zero-variance group over one with variance.
    sel = s.select_groups(groups, 6)
    assert set(sel.kept) == {1, 2, 4, 5, 7} | {sel.kept[-1]} and sel.kept[-1] in (0, 3, 6)
    # Ties in |c - G/2| go to the larger reward spread, then rollout order.
    sel = s.select_groups({0: [1.0, 0.6, 0.0, 0.0], 1: [1.0, 1.0, 0.0, 0.0]}, 1)
    assert sel.kept == [1]


def test_selection_with_group_size_8_and_skip():
    s = CurriculumState(4)
    sel = s.select_groups({0: mixed(7, 8), 1: mixed(4, 8), 2: mixed(1, 8), 3: mixed(5, 8)}, 2)
    assert sel.kept == [1, 3] and sel.dropped == [0, 2]
    sel = s.select_groups({0: RIGHT, 1: WRONG, 2: RIGHT}, 2)
    assert sel.skip_update and sel.zero_variance == [0, 1, 2] and len(sel.kept) == 2


def test_selection_does_not_change_state():
    s = CurriculumState(3)
    before = s.to_dict()
    s.select_groups({0: RIGHT, 1: mixed(2)}, 1)
    assert s.to_dict() == before


# ----------------------------------------------------------------------------- draws
def test_draw_never_returns_pending_and_is_without_replacement():
    s = CurriculumState(30)
    s.init_offline({i: (i % 10) / 10 for i in range(30)})
    s.expansion_ema = 1.5
    for seed in range(200):
        rng = np.random.default_rng(seed)
        pending = set(rng.choice(30, size=int(rng.integers(0, 25)), replace=False).tolist())
        got = s.draw(6, rng=rng, pending=pending)
        assert not set(got) & pending
        assert len(got) == len(set(got)) == min(9, 30 - len(pending))
    assert s.draw(4, rng=0, pending=range(30)) == []
    assert sorted(s.draw(4, rng=0, pending=range(28))) == [28, 29]


def test_draw_is_deterministic_with_a_seed():
    a, b = CurriculumState(40), CurriculumState(40)
    for s in (a, b):
        s.init_offline({i: (i % 8) / 8 for i in range(40)})
    assert [a.draw(5, rng=7) for _ in range(3)] == [b.draw(5, rng=7) for _ in range(3)]
    # The internal generator (config.seed) is deterministic too, and advances.
    seq_a = [a.draw(5) for _ in range(5)]
    seq_b = [b.draw(5) for _ in range(5)]
    assert seq_a == seq_b and len({tuple(x) for x in seq_a}) > 1
    c = CurriculumState(40, CurriculumConfig(seed=1))
    c.init_offline({i: (i % 8) / 8 for i in range(40)})
    assert [c.draw(5) for _ in range(5)] != seq_a


def _chi2(counts: np.ndarray) -> float:
    exp = counts.sum() / len(counts)
    return float(((counts - exp) ** 2 / exp).sum())


def test_uniform_mode_draws_uniformly_and_still_tracks_stats():
    n, draws = 20, 2000
    skew = {i: (0.0 if i < 15 else 0.5) for i in range(n)}  # RLCS would favour 15..19
    uni = CurriculumState(n, CurriculumConfig(mode="uniform"))
    cur = CurriculumState(n)
    for s in (uni, cur):
        s.init_offline(skew)
    cu, cc = np.zeros(n), np.zeros(n)
    rng_u, rng_c = np.random.default_rng(0), np.random.default_rng(0)
    for _ in range(draws):
        cu[uni.draw(5, rng=rng_u)] += 1
        cc[cur.draw(5, rng=rng_c)] += 1
    assert cu.sum() == cc.sum() == 5 * draws
    # chi-square with 19 d.o.f.: 43.8 is the 0.1 % critical value.
    assert _chi2(cu) < 43.8
    assert _chi2(cc) > 1000  # the curriculum is far from uniform on the same data
    # Uniform: no expansion, no selection, but the curves are tracked.
    uni.update({i: WRONG for i in range(10)})
    assert uni.expansion_ema > 1.0 and uni.draw_size(5) == 5
    sel = uni.select_groups({3: RIGHT, 1: mixed(2), 2: WRONG}, 2)
    assert sel.kept == [3, 1] and sel.zero_variance == [3, 2]
    m = uni.metrics()
    assert m["curriculum/zero_variance_frac"] == 1.0 and m["curriculum/next_draw_size"] == 5.0
    w = uni.tier_weights()  # the real draw shares: prompt counts per tier
    assert w["very_hard"] == pytest.approx(15 / 20) and w["medium"] == pytest.approx(5 / 20)


# ----------------------------------------------------------------------------- offline
def test_offline_blend_labels_and_cold_start():
    s = CurriculumState(4, CurriculumConfig(label_scale=5))
    s.init_offline({0: 1.0, 1: 0.5}, labels={0: "hard", 2: "Very-Easy", 3: 3})
    assert s.pass_rate(0) == pytest.approx(0.7 * 1.0 + 0.3 * 0.25)
    assert s.pass_rate(1) == 0.5
    assert s.pass_rate(2) == 0.9375 and s.tier_of(2) == "very_easy"
    assert s.pass_rate(3) == 0.5  # 3 of 5 = medium
    auto = CurriculumState(3)  # numeric labels all within 1–3: the workshop's 3-level scale
    auto.init_offline(labels={0: 1, 1: 2, 2: 3})
    assert [auto.tier_of(i) for i in range(3)] == ["easy", "medium", "hard"]
    five = CurriculumState(3)
    five.init_offline(labels={0: 1, 1: 3, 2: 5})
    assert [five.tier_of(i) for i in range(3)] == ["very_easy", "medium", "very_hard"]
    cold = CurriculumState(4, CurriculumConfig(cold_start=True))
    cold.init_offline({0: 1.0, 1: 0.0}, labels={2: "hard"})
    assert [cold.pass_rate(i) for i in range(4)] == [0.5] * 4
    assert cold.tier_weights()["medium"] == 1.0


@pytest.mark.parametrize("kwargs,match", [
    ({"pass_rates": {5: 0.5}}, "out of range"),
    ({"pass_rates": {0: 1.5}}, r"\[0, 1\]"),
    ({"labels": {0: "impossible"}}, "Unknown difficulty label"),
    ({"labels": {0: 9}}, "1–5"),
])
def test_offline_bad_input(kwargs, match):
    with pytest.raises(DataError, match=match):
        CurriculumState(3).init_offline(**kwargs)


def test_label_prior_table():
    assert [C.label_prior(i) for i in (1, 2, 3, 4, 5)] == [0.9375, 0.75, 0.5, 0.25, 0.0625]
    assert C.label_prior("easy") == 0.75 and C.label_prior(" medium ") == 0.5 and C.label_prior("") is None
    assert C.label_prior("easy", {"easy": 0.9}) == 0.9


# ----------------------------------------------------------------------------- too easy
def test_too_easy_after_patience_all_correct_updates():
    s = CurriculumState(4)
    s.update({0: RIGHT, 1: RIGHT})
    s.update({0: RIGHT, 1: RIGHT})
    assert not s.too_easy()
    s.update({2: RIGHT, 3: mixed(2)})  # one group with variance resets the streak
    for _ in range(2):
        s.update({0: RIGHT, 2: RIGHT})
    assert not s.too_easy()
    s.update({1: RIGHT})
    assert s.too_easy()
    assert "all-correct" in s.too_easy_message() and "harder prompts" in s.too_easy_message()
    assert s.metrics()["curriculum/all_correct_frac"] == 1.0


# ----------------------------------------------------------------------------- metrics, persistence
def test_metrics_names():
    s = CurriculumState(6)
    s.init_offline({i: i / 5 for i in range(6)})
    s.draw(2, rng=0)
    s.update({0: WRONG, 1: mixed(2), 2: RIGHT})
    m = s.metrics()
    for t in C.TIER_NAMES:
        for k in ("tier_weight", "tier_count", "tier_pass_rate"):
            assert f"curriculum/{k}/{t}" in m
    for k in ("zero_variance_frac", "expansion_ema", "effective_batch", "all_correct_frac"):
        assert f"curriculum/{k}" in m
    assert m["curriculum/zero_variance_frac"] == pytest.approx(2 / 3)
    assert m["curriculum/all_correct_frac"] == pytest.approx(1 / 3)
    assert sum(m[f"curriculum/tier_count/{t}"] for t in C.TIER_NAMES) == 6
    assert m["curriculum/effective_batch"] == 2.0
    json.dumps(m)  # JSON-safe (None for empty tiers, no NaN)


def _busy_state() -> CurriculumState:
    s = CurriculumState(12, CurriculumConfig(seed=3, label_weight=0.4))
    s.init_offline({i: (i % 6) / 6 for i in range(10)}, labels={10: "hard", 11: 1})
    for step in range(4):
        picks = s.draw(3)
        s.update({i: mixed((i + step) % 5) for i in picks})
    return s


def test_state_round_trips_exactly(tmp_path):
    s = _busy_state()
    d = s.to_dict()
    back = CurriculumState.from_dict(json.loads(json.dumps(d)), num_prompts=12)
    assert back.to_dict() == d and back == s
    assert back.metrics() == s.metrics()
    # The internal generator resumes where it was: the next draws agree.
    assert [back.draw(3) for _ in range(3)] == [s.draw(3) for _ in range(3)]
    path = s.save(tmp_path / "ckpt" / "curriculum.json")
    loaded = CurriculumState.load(path)
    assert loaded == s
    with pytest.raises(DataError, match="same dataset"):
        CurriculumState.load(path, num_prompts=13)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not readable"):
        CurriculumState.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="does not exist"):
        CurriculumState.load(tmp_path / "missing.json")
    broken = dict(d)
    del broken["weights"]
    with pytest.raises(DataError, match="malformed"):
        CurriculumState.from_dict(broken)


def test_config_yaml_round_trip_and_validation(tmp_path):
    cfg = CurriculumConfig(mode="uniform", tier_boundaries=[0.2, 0.8], tier_names=["hard", "mid", "easy"])
    cfg.to_yaml(tmp_path / "c.yaml")
    assert CurriculumConfig.from_yaml(tmp_path / "c.yaml") == cfg
    s = CurriculumState(3, cfg)
    s.init_offline({0: 0.1, 1: 0.5, 2: 0.9})
    assert [s.tier_of(i) for i in range(3)] == ["hard", "mid", "easy"]
    for bad, field in [
        ({"mode": "random"}, "mode"),
        ({"tier_boundaries": [0.5, 0.2, 0.7, 0.9]}, "tier_boundaries"),
        ({"tier_names": ["a", "b"]}, "tier_names"),
        ({"expansion_r_cap": 1.0}, "expansion_r_cap"),
        ({"max_expansion": 0.5}, "max_expansion"),
        ({"pass_rate_alpha": 0.0}, "pass_rate_alpha"),
    ]:
        with pytest.raises(ConfigError, match=field):
            CurriculumState(3, CurriculumConfig(**bad))
    with pytest.raises(ConfigError):
        CurriculumState(0)
    with pytest.raises(ConfigError, match="label_priors"):
        CurriculumConfig.from_dict({"label_priors": {"easy": "very"}}).validate()
    custom = CurriculumConfig.from_dict({"label_priors": {"easy": 0.8, "trivial": 1.0}})
    s = CurriculumState(3, custom)
    s.init_offline(labels={0: "easy", 1: "trivial", 2: "hard"})  # "hard" still from the defaults
    assert [s.pass_rate(i) for i in range(3)] == [0.8, 1.0, 0.25]


def test_update_bad_input():
    s = CurriculumState(2)
    with pytest.raises(DataError):
        s.update({})
    with pytest.raises(DataError, match="out of range"):
        s.update({2: RIGHT})
    with pytest.raises(DataError, match="no rewards"):
        s.update({0: []})


def test_module_doctests():
    res = doctest.testmod(C)
    assert res.attempted >= 8 and res.failed == 0


def test_group_pooling_moves_unscored_prompts_of_a_group():
    """Issue 25: prompts never drawn take their group's online pass rate (no grading rollouts)."""
    from studio.engine.train.curriculum import group_key

    cfg = CurriculumConfig(group_by=["family", "difficulty"], group_min_samples=8, cold_start=True)
    s = CurriculumState(6, cfg)
    s.init_offline()
    rows = [{"family": "easy", "difficulty": 1}] * 3 + [{"family": "hard", "difficulty": 3}] * 2 + [{}]
    s.set_groups({i: group_key(r, cfg.group_by) for i, r in enumerate(rows)})
    assert [s.group_of(i) for i in (0, 3, 5)] == ["easy-1", "hard-3", None]
    s.update({0: [1.0] * 8, 3: [0.0] * 8})  # one group of each scored
    assert s.group_pass_rates() == {"easy-1": 1.0, "hard-3": 0.0}
    # the unscored members follow their group; the scored ones keep their own EMA; the ungrouped stays
    assert s.pass_rate(1) == s.pass_rate(2) == 1.0 and s.tier_of(1) == "very_easy"
    assert s.pass_rate(4) == 0.0 and s.tier_of(4) == "very_hard"
    assert s.pass_rate(0) == 0.75 and s.pass_rate(5) == 0.5
    assert s.metrics()["curriculum/group_pass_rate/easy-1"] == 1.0
    # saved and restored with the groups
    again = CurriculumState.from_dict(s.to_dict())
    assert again == s and again.group_pass_rates() == s.group_pass_rates()
    # below group_min_samples nothing moves
    t = CurriculumState(3, CurriculumConfig(group_by=["family"], group_min_samples=16, cold_start=True))
    t.init_offline()
    t.set_groups({0: "a", 1: "a"})
    t.update({0: [1.0] * 8})
    assert t.pass_rate(1) == 0.5


def test_group_pooling_settings_are_checked():
    with pytest.raises(ConfigError, match="group_by"):
        CurriculumState(2, CurriculumConfig(group_by="family"))
    with pytest.raises(ConfigError, match="group_weight"):
        CurriculumState(2, CurriculumConfig(group_weight=2.0))
    old = CurriculumState(2).to_dict()
    del old["group"], old["group_stats"]  # a state saved before group pooling still loads
    assert CurriculumState.from_dict(old).group_of(0) is None
