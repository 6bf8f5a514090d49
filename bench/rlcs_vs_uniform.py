"""RLCS vs uniform sampling on the workshop RL recipe: held-out accuracy at equal rollouts.

    python bench/rlcs_vs_uniform.py                                  # 5 seeds × {rlcs, uniform}, rl.yaml
    python bench/rlcs_vs_uniform.py --seeds 5 --max-steps 150 --parallel 2 --json out.json
    python bench/rlcs_vs_uniform.py --report out.json                # re-print a saved result

What it does, in one invocation:

1. Config: the recipe ``sample_data/workshop/rl.yaml`` (``--recipe``): its model
   (toy-thinking), data (1,200 *shapes* questions, levels 2–3), held-out prompts, B, G,
   learning rate, LoRA and temperature. Flags override single fields.
2. For every seed, one GRPO run per sampler with the same settings and seed: ``rlcs``
   (offline pass-rate grading with K samples per prompt, tiers, weights, expansion) and
   ``uniform`` (TRL's default: B prompts uniformly at random, no grading, no expansion).
   Held-out accuracy (greedy) every ``--eval-every`` steps and at the last step.
3. Rollouts are counted as the policy generated them: training completions, plus for RLCS
   the offline-grading completions (K × prompts) — reported both with and without them.
4. Reported: (a) held-out accuracy at equal rollouts — every run read at the largest
   rollout count all runs reached (the last evaluation at or below it); (b) rollouts to a
   target (step-0 accuracy + ``--gain``, or ``--target``); (c) accuracy at the last step.
   Each with the per-seed values, the median and the spread (min–max). A run that never
   reaches the target is censored at its budget (``>N``).

CPU cost (2 cores): one rl.yaml step is ~1.3 s, RLCS grading of 1,200 prompts × 4 ~1 min,
one 64-prompt evaluation ~5 s; ``--parallel 2`` runs two runs at once with one thread each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from studio.runtime import quiet_defaults  # noqa: E402

quiet_defaults()  # as the studio CLI: no bitsandbytes import (and its warning) without 4-bit

RECIPE = REPO / "sample_data" / "workshop" / "rl.yaml"


def make_config(args, mode: str, seed: int, run_dir: Path):
    """The recipe's RLRunConfig with this sampler, seed and the command line's overrides."""
    from studio.engine.train import rl
    from studio.engine.train.runs import load_recipe

    cfg = load_recipe(rl.RLRunConfig, args.recipe)
    cfg.output_dir = str(run_dir)
    cfg.seed = seed
    cfg.curriculum.mode = mode
    cfg.curriculum.seed = seed
    grading = mode == "rlcs" and args.grading > 0
    cfg.curriculum.offline_grading = grading
    cfg.curriculum.offline_samples = max(1, args.grading)
    cfg.format_gate = "warn"  # a benchmark measures whatever model it is given
    cfg.kl_every, cfg.save_every, cfg.rollouts_logged_per_step = 0, 10**6, 0
    overrides = {"max_steps": args.max_steps, "eval_every": args.eval_every, "max_eval_prompts": args.eval_prompts,
                 "learning_rate": args.lr, "thinking_budget": args.thinking_budget,
                 "answer_budget": args.answer_budget, "num_generations": args.group}
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    if args.batch is not None:
        cfg.per_device_train_batch_size = args.batch * cfg.num_generations
    if args.model:
        cfg.model.name_or_path = args.model
    if args.data:
        cfg.data, cfg.eval_data = str(args.data), str(args.eval_data) if args.eval_data else None
    cfg.model.device = "cpu"
    cfg.validate()
    return cfg


def run_one(job: tuple) -> dict:
    """One GRPO run (a worker process when --parallel > 1); its eval curve and rollout counts."""
    args, mode, seed, threads = job
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio.engine.train import rl

    torch.manual_seed(seed)
    run_dir = Path(args.out) / f"{mode}-seed{seed}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    cfg = make_config(args, mode, seed, run_dir)
    t0 = time.perf_counter()
    summary = rl.train(cfg, run_dir)
    return read_run(run_dir, mode, seed, cfg, summary, round(time.perf_counter() - t0, 1))


def read_run(run_dir: Path, mode: str, seed: int, cfg, summary: dict | None = None, seconds: float | None = None) -> dict:
    """A finished run folder as the table needs it: eval curve ``[step, rollouts, accuracy]``,
    rollouts, grading rollouts, zero-variance fraction (``summary`` None: read from metrics)."""
    from studio.engine.train import rl
    from studio.engine.train.metrics import read_metrics

    recs = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") in ("train", "eval")]
    # keyed by the rollouts generated before each evaluation (the x-axis that does not depend on
    # which step number a record carries); the final-step evaluation is the last point
    curve = sorted({int(r["eval/rollouts"]): (int(r["step"]), float(r["eval/accuracy"])) for r in recs
                    if isinstance(r.get("eval/accuracy"), (int, float)) and "eval/rollouts" in r}.items())
    zv = [float(r["curriculum/zero_variance_frac"]) for r in recs
          if isinstance(r.get("curriculum/zero_variance_frac"), (int, float))]
    grading = len(rl.load_prompts(cfg.data)) * cfg.curriculum.offline_samples if cfg.curriculum.offline_grading else 0
    if summary is None:
        summary = {"rollouts": curve[-1][0] if curve else 0, "steps": max((int(r["step"]) for r in recs), default=0)}
    return {"mode": mode, "seed": seed, "curve": [[s, n, a] for n, (s, a) in curve],
            "zero_variance_frac": statistics.fmean(zv) if zv else None, "rollouts": summary["rollouts"],
            "grading_rollouts": grading, "steps": summary["steps"], "seconds": seconds}


def total(run: dict, n: int, with_grading: bool) -> int:
    return n + (run["grading_rollouts"] if with_grading else 0)


def rollouts_to(run: dict, target: float, with_grading: bool = True) -> float:
    """Rollouts (training, + grading when asked) before the first eval with accuracy ≥ target; ∞ if never."""
    for _, n, acc in run["curve"]:
        if acc >= target - 1e-9:
            return total(run, n, with_grading)
    return math.inf


def accuracy_at(run: dict, budget: float, with_grading: bool = True) -> float | None:
    """Held-out accuracy of the last evaluation at or below ``budget`` rollouts (None: none)."""
    seen = [acc for _, n, acc in run["curve"] if total(run, n, with_grading) <= budget]
    return seen[-1] if seen else None


def _num(v: str):
    for t in (int, float):
        try:
            return t(v)
        except (TypeError, ValueError):
            pass
    return None if v == "None" else v


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", type=Path, default=RECIPE, help="RL recipe (default sample_data/workshop/rl.yaml)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--samplers", nargs="+", choices=("rlcs", "uniform"), default=["rlcs", "uniform"],
                   help="train only these (e.g. uniform for longer into the same --out, then "
                        "--from-runs summarises every folder there: equal rollouts when RLCS "
                        "draws more prompts per step)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="default: the recipe's")
    p.add_argument("--batch", type=int, default=None, help="B, prompts per GRPO step (default: the recipe's)")
    p.add_argument("--group", type=int, default=None, help="G, samples per prompt (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--thinking-budget", type=int, default=None)
    p.add_argument("--answer-budget", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--eval-prompts", type=int, default=None)
    p.add_argument("--grading", type=int, default=None,
                   help="RLCS offline grading samples per prompt (default: the recipe's — 0 when it turns grading off; "
                        "0 = difficulty labels only)")
    p.add_argument("--gain", type=float, default=0.10, help="target = step-0 held-out accuracy + gain")
    p.add_argument("--target", type=float, default=None, help="absolute target accuracy (overrides --gain)")
    p.add_argument("--model", default=None, help="model (default: the recipe's)")
    p.add_argument("--data", type=Path, default=None, help="train prompts (default: the recipe's)")
    p.add_argument("--eval-data", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("STUDIO_RUNS", "runs")) / "bench-rlcs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parallel", type=int, default=1, help="runs at once (threads are split between them)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--report", type=Path, default=None, help="re-print the table of a saved --json result")
    p.add_argument("--from-runs", action="store_true",
                   help="do not train: summarise the finished <out>/<sampler>-seed<N> folders (same flags)")
    args = p.parse_args(argv)
    if args.grading is None:
        from studio.engine.train import rl
        from studio.engine.train.runs import load_recipe

        cc = load_recipe(rl.RLRunConfig, args.recipe).curriculum
        # the recipe's own choice: rl-mixed.yaml grades nothing (labels + group pooling)
        args.grading = cc.offline_samples if cc.offline_grading and not cc.cold_start else 0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        old = argparse.Namespace(**{**vars(args), **{k: _num(v) for k, v in saved["args"].items()}})
        print(summarize(saved["runs"], old)[0])
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    jobs = [(args, mode, seed, max(1, args.threads // max(1, args.parallel)))
            for seed in range(args.first_seed, args.first_seed + args.seeds) for mode in ("rlcs", "uniform")
            if args.from_runs or mode in args.samplers]
    runs = []
    if args.from_runs:
        jobs = [j for j in jobs if (Path(args.out) / f"{j[1]}-seed{j[2]}" / "metrics.jsonl").is_file()]

    def done(r):
        runs.append(r)
        print(f"[run] {r['mode']} seed {r['seed']}: {r['steps']} steps, {r['rollouts']} rollouts "
              f"(+{r['grading_rollouts']} grading), {r['seconds']} s, eval curve "
              f"{[(s, n, round(a, 3)) for s, n, a in r['curve']]}", flush=True)

    if args.from_runs:
        for _, mode, seed, _ in jobs:
            run_dir = Path(args.out) / f"{mode}-seed{seed}"
            done(read_run(run_dir, mode, seed, make_config(args, mode, seed, run_dir)))
    elif args.parallel > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.parallel, maxtasksperchild=1) as pool:
            for r in pool.imap_unordered(run_one, jobs):
                done(r)
    else:
        for job in jobs:
            done(run_one(job))
    text, summary = summarize(runs, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({**summary, "runs": runs, "args": {k: str(v) for k, v in vars(args).items()}},
                                        indent=1, default=str))
    return 0


def _spread(xs: list[float], fmt) -> str:
    finite = [x for x in xs if x is not None and not math.isinf(x)]
    if not finite:
        return "n/a"
    med = statistics.median([math.inf if x is None else x for x in xs])
    lo, hi = min(finite), max(finite)
    more = "" if len(finite) == len(xs) else f", {len(xs) - len(finite)} never"
    return f"{'never' if math.isinf(med) else fmt(med)} [{fmt(lo)}–{fmt(hi)}{more}]"


def summarize(runs: list[dict], args) -> tuple[str, dict]:
    """The printed table and a summary dict.

    Rows: accuracy at equal rollouts (largest budget every run reached, grading counted),
    rollouts to target (with and without RLCS's grading rollouts), accuracy at the last step,
    each as per-seed values and median [min–max]. A run that never reaches the target is
    censored at its own budget (``>N``) and counted as ∞ in the median.
    """
    seeds = sorted({r["seed"] for r in runs})
    modes = [m for m in ("rlcs", "uniform") if any(r["mode"] == m for r in runs)]
    by = {m: sorted((r for r in runs if r["mode"] == m), key=lambda r: r["seed"]) for m in modes}
    start = [r["curve"][0][2] for r in runs if r["curve"]]
    target = args.target if args.target is not None else (statistics.fmean(start) if start else 0) + args.gain
    reached = [total(r, r["curve"][-1][1], True) for r in runs if r["curve"]]
    budget = min(reached) if reached else 0
    budget_train = min((r["curve"][-1][1] for r in runs if r["curve"]), default=0)
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}"  # noqa: E731
    cnt = lambda x: f"{int(x)}"  # noqa: E731
    rows: dict[str, dict[str, list]] = {m: {} for m in modes}
    for m in modes:
        rows[m]["acc_equal"] = [accuracy_at(r, budget) for r in by[m]]
        rows[m]["acc_equal_train"] = [accuracy_at(r, budget_train, False) for r in by[m]]
        rows[m]["to_target"] = [rollouts_to(r, target, True) for r in by[m]]
        rows[m]["to_target_train"] = [rollouts_to(r, target, False) for r in by[m]]
        rows[m]["final"] = [r["curve"][-1][2] if r["curve"] else None for r in by[m]]
    a0 = by[modes[0]][0] if modes and by[modes[0]] else {}
    lines = ["", f"recipe: {args.recipe}  model: {args.model or 'from the recipe'}",
             f"seeds: {seeds}; steps {a0.get('steps')}; eval every {args.eval_every or 'recipe'} steps on "
             f"{args.eval_prompts or 'the recipe'} held-out prompts; RLCS grading K={args.grading}",
             f"step-0 held-out accuracy {pct(statistics.fmean(start)) if start else 'n/a'} %; "
             f"target {pct(target)} %; equal-rollout budget {budget} (grading counted)", ""]

    def table(title, key, fmt, cell):
        lines.append(f"{title}")
        lines.append(f"  {'sampler':<8} " + " ".join(f"{'s' + str(s):>7}" for s in seeds) + "   median [min–max]")
        for m in modes:
            vals = rows[m][key]
            lines.append(f"  {m:<8} " + " ".join(f"{cell(v, r):>7}" for v, r in zip(vals, by[m]))
                         + "   " + _spread(vals, fmt))
        lines.append("")

    acc_cell = lambda v, r: pct(v)  # noqa: E731

    def need_cell(with_grading):
        return lambda v, r: f">{total(r, r['rollouts'], with_grading)}" if math.isinf(v) else cnt(v)

    table(f"held-out accuracy % at {budget} rollouts (equal budget, RLCS's grading counted)", "acc_equal", pct,
          acc_cell)
    table(f"held-out accuracy % at {budget_train} training rollouts (grading not counted)", "acc_equal_train", pct,
          acc_cell)
    table("rollouts to target (grading counted)", "to_target", cnt, need_cell(True))
    table("rollouts to target (training rollouts only)", "to_target_train", cnt, need_cell(False))
    table("held-out accuracy % at the last step", "final", pct, acc_cell)
    zv = {m: [r["zero_variance_frac"] for r in by[m] if r["zero_variance_frac"] is not None] for m in modes}
    lines.append("mean zero-variance group fraction: " + ", ".join(
        f"{m} {statistics.fmean(v):.3f}" for m, v in zv.items() if v))
    med = {m: statistics.median(rows[m]["to_target"]) if rows[m]["to_target"] else math.inf for m in modes}
    ratio = None
    if len(modes) == 2 and not any(math.isinf(med[m]) for m in modes) and med["uniform"] > 0:
        ratio = med["rlcs"] / med["uniform"]
    lines.append("rollouts to target, RLCS ÷ uniform (medians, grading counted): "
                 + (f"{ratio:.3f}" if ratio is not None else "n/a (a median run never reached the target)"))
    summary = {"target": target, "budget": budget, "budget_train": budget_train, "ratio": ratio,
               "median": {m: {k: (None if not v or any(x is None for x in v) else statistics.median(v))
                              for k, v in rows[m].items()} for m in modes},
               "zero_variance_frac": {m: (statistics.fmean(v) if v else None) for m, v in zv.items()}}
    return "\n".join(lines), summary


if __name__ == "__main__":
    raise SystemExit(main())
