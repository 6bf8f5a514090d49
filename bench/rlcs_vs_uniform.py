"""RLCS vs uniform sampling: rollouts needed to reach a held-out accuracy (the headline number).

    python bench/rlcs_vs_uniform.py                       # 3 seeds × {rlcs, uniform}, defaults below
    python bench/rlcs_vs_uniform.py --seeds 3 --max-steps 40 --gain 0.10 --json out.json

What it does, in one invocation:

1. Model: ``studio/assets/toy-thinking`` (the workshop model) when it is there and finished;
   otherwise a short format SFT warm-up (``studio.engine.toy_train`` stage ``thinking``,
   ``--warmup-steps``) from ``studio/assets/toy-base`` if finished, else from the embedded
   tiny model. The output says which.
2. Task set: ``sample_data/workshop/rl.jsonl`` (train) and ``eval.jsonl`` (held out).
3. For every seed, one GRPO run per sampler (same model, data, hyper-parameters, seed):
   ``rlcs`` (tiers, weights, expansion, selection) and ``uniform`` (TRL's default: B
   prompts uniformly, no expansion). Held-out accuracy (greedy, forced answering) every
   ``--eval-every`` steps.
4. Rollouts to target = training rollouts generated before the first evaluation whose
   accuracy ≥ target (target = step-0 accuracy + ``--gain`` unless ``--target`` is given).
   Offline grading rollouts are counted for RLCS when ``--grading K`` is used (default:
   difficulty labels only, no grading rollouts). A run that never reaches the target counts
   as ∞ (shown as ``>N``).
5. Prints a table (per seed and median) and the ratio median(RLCS) ÷ median(uniform) —
   the goal is ≤ 0.7 — plus each sampler's mean zero-variance group fraction.

CPU cost: every step samples B·G completions (RLCS: up to 2B·G); use ``--seeds``,
``--max-steps``, ``--batch`` and ``--eval-every`` to fit the machine. Results also go to
``--json``.
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


def pick_model(args) -> tuple[str, str]:
    """(model folder, description) — the workshop model or a warmed-up fallback."""
    from studio.engine.tiny import cache_root, embedded_path

    def finished(p: Path) -> bool:
        f = p / "studio_model.json"
        try:
            return f.is_file() and json.loads(f.read_text()).get("finished", True)
        except ValueError:
            return False

    toy = REPO / "studio" / "assets" / "toy-thinking"
    if args.model:
        return args.model, f"--model {args.model}"
    if finished(toy):
        return str(toy), "workshop model studio/assets/toy-thinking"
    base = REPO / "studio" / "assets" / "toy-base"
    init, what = (str(base), "toy-base") if finished(base) else (str(embedded_path()), "embedded tiny")
    out = cache_root() / f"bench-warmup-{what.replace(' ', '-')}-{args.warmup_steps}"
    if not finished(out):
        from studio.engine import toy_train

        print(f"[model] studio/assets/toy-thinking not found: format SFT warm-up of {what} for "
              f"{args.warmup_steps} steps → {out}", flush=True)
        toy_train.train("thinking", out, init=init, steps=args.warmup_steps, lr=args.warmup_lr, minutes=0,
                        threads=args.threads, save_minutes=1e9, eval_every=10**9)
    return str(out), f"{what} after a {args.warmup_steps}-step format SFT warm-up (toy-thinking absent)"


def run_one(model_dir: str, mode: str, seed: int, args, out_root: Path) -> dict:
    """One GRPO run; returns its eval curve, rollouts and zero-variance fraction."""
    import torch

    from studio.config import ModelSpec
    from studio.engine import rl
    from studio.engine.curriculum import CurriculumConfig
    from studio.engine.metrics import read_metrics

    torch.manual_seed(seed)
    grading = args.grading > 0
    cfg = rl.RLRunConfig(
        model=ModelSpec(name_or_path=model_dir, device="cpu"),
        data=str(args.data), eval_data=str(args.eval_data), max_eval_prompts=args.eval_prompts,
        num_generations=args.group, per_device_train_batch_size=args.batch * args.group,
        max_steps=args.max_steps, learning_rate=args.lr, thinking_budget=args.thinking_budget,
        answer_budget=args.answer_budget, lora_rank=args.lora_rank, lora_alpha=2 * args.lora_rank,
        eval_every=args.eval_every, kl_every=0, save_every=10**6, seed=seed, rollouts_logged_per_step=0,
        format_gate="warn",  # a benchmark measures whatever model it is given (tiny budgets force answers)
        curriculum=CurriculumConfig(mode=mode, seed=seed, offline_grading=grading and mode == "rlcs",
                                    offline_samples=max(1, args.grading), too_easy_patience=10**6),
    )
    run_dir = out_root / f"{mode}-seed{seed}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    summary = rl.train(cfg, run_dir)
    recs = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") == "train"]
    curve = [(int(r["eval/rollouts"]), float(r["eval/accuracy"])) for r in recs
             if isinstance(r.get("eval/accuracy"), (int, float)) and "eval/rollouts" in r]
    zv = [float(r["curriculum/zero_variance_frac"]) for r in recs
          if isinstance(r.get("curriculum/zero_variance_frac"), (int, float))]
    grading_rollouts = len(rl.load_prompts(args.data)) * args.grading if (grading and mode == "rlcs") else 0
    return {"mode": mode, "seed": seed, "curve": curve, "zero_variance_frac": statistics.fmean(zv) if zv else None,
            "rollouts": summary["rollouts"], "grading_rollouts": grading_rollouts, "steps": summary["steps"],
            "seconds": round(time.perf_counter() - t0, 1)}


def rollouts_to(run: dict, target: float) -> float:
    """Training (+ grading) rollouts before the first eval with accuracy ≥ target; ∞ if never."""
    for n, acc in run["curve"]:
        if acc >= target - 1e-9:
            return n + run["grading_rollouts"]
    return math.inf


def _num(v: str):
    for t in (int, float):
        try:
            return t(v)
        except (TypeError, ValueError):
            pass
    return None if v == "None" else v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=8, help="B, prompts per GRPO step")
    p.add_argument("--group", type=int, default=4, help="G, samples per prompt")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--thinking-budget", type=int, default=48)
    p.add_argument("--answer-budget", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--eval-prompts", type=int, default=60)
    p.add_argument("--gain", type=float, default=0.10, help="target = step-0 held-out accuracy + gain")
    p.add_argument("--target", type=float, default=None, help="absolute target accuracy (overrides --gain)")
    p.add_argument("--grading", type=int, default=0, help="RLCS offline grading with K samples (0: labels only)")
    p.add_argument("--model", default=None, help="model folder (default: toy-thinking or a warm-up)")
    p.add_argument("--warmup-steps", type=int, default=150)
    p.add_argument("--warmup-lr", type=float, default=1e-3)
    p.add_argument("--data", type=Path, default=REPO / "sample_data" / "workshop" / "rl.jsonl")
    p.add_argument("--eval-data", type=Path, default=REPO / "sample_data" / "workshop" / "eval.jsonl")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("STUDIO_RUNS", "runs")) / "bench-rlcs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--report", type=Path, default=None, help="re-print the table of a saved --json result")
    args = p.parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        old = argparse.Namespace(**{**vars(args), **{k: _num(v) for k, v in saved["args"].items()}})
        print(summarize(saved["runs"], old, saved["model"])[0])
        return 0

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir, model_note = pick_model(args)
    print(f"[model] {model_note}: {model_dir}", flush=True)
    runs = []
    for seed in range(args.seeds):
        for mode in ("rlcs", "uniform"):
            r = run_one(model_dir, mode, seed, args, args.out)
            runs.append(r)
            print(f"[run] {mode} seed {seed}: {r['steps']} steps, {r['rollouts']} rollouts, "
                  f"{r['seconds']} s, eval curve {r['curve']}", flush=True)

    text, summary = summarize(runs, args, model_note)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({**summary, "model": model_note, "runs": runs,
                                         "args": {k: str(v) for k, v in vars(args).items()}},
                                        indent=1, default=str))
    return 0


def summarize(runs: list[dict], args, model_note: str) -> tuple[str, dict]:
    """The printed table and a summary dict (target, medians, ratio or its bound, zero-variance).

    A run that never reaches the target is *censored* at its own rollout count: its true
    need is more than that. With censored uniform runs the ratio is reported as an upper
    bound ``median(RLCS) / median(uniform budget)``; with censored RLCS runs as a lower bound.
    """
    seeds = sorted({r["seed"] for r in runs})
    start = [r["curve"][0][1] for r in runs if r["curve"]]
    target = args.target if args.target is not None else (statistics.fmean(start) if start else 0) + args.gain
    need = {m: [rollouts_to(r, target) for r in runs if r["mode"] == m] for m in ("rlcs", "uniform")}
    budget = {m: [r["rollouts"] + r["grading_rollouts"] for r in runs if r["mode"] == m] for m in need}
    zv = {m: [r["zero_variance_frac"] for r in runs if r["mode"] == m and r["zero_variance_frac"] is not None]
          for m in need}
    med = {m: statistics.median(v) for m, v in need.items()}
    # Median with censored values replaced by their bound: a lower bound on the true median.
    med_lo = {m: statistics.median([b if math.isinf(x) else x for x, b in zip(need[m], budget[m])]) for m in need}
    r_inf, u_inf = math.isinf(med["rlcs"]), math.isinf(med["uniform"])
    if not r_inf and not u_inf:
        ratio, shown = med["rlcs"] / med["uniform"], f"{med['rlcs'] / med['uniform']:.3f}"
    elif not r_inf and u_inf:
        ratio = med["rlcs"] / med_lo["uniform"]
        shown = (f"< {ratio:.2f} (upper bound: uniform never reached the target within its "
                 f"{int(med_lo['uniform'])} rollouts)")
    elif r_inf and not u_inf:
        ratio = med_lo["rlcs"] / med["uniform"]
        shown = f"> {ratio:.2f} (lower bound: RLCS never reached the target within its budget)"
    else:
        ratio, shown = math.nan, "n/a (neither sampler reached the target)"

    def cell(x: float, b: int) -> str:
        return f">{b}" if math.isinf(x) else f"{int(x)}"

    lines = [
        "",
        f"model: {model_note}",
        f"task set: {Path(str(args.data)).name} (train) / {Path(str(args.eval_data)).name} "
        f"(held out, {args.eval_prompts} prompts)",
        f"settings: B={args.batch} G={args.group} steps={args.max_steps} lr={args.lr} T={args.thinking_budget} "
        f"A={args.answer_budget} eval every {args.eval_every} steps; grading "
        f"{'K=' + str(args.grading) + ' (counted)' if int(args.grading) else 'off (difficulty labels only)'}",
        f"target held-out accuracy: {target:.3f}" + ("" if args.target is not None else
                                                     f" (step-0 accuracy {target - args.gain:.3f} + {args.gain})"),
        "",
        f"{'sampler':<9} " + " ".join(f"{'seed ' + str(s):>9}" for s in seeds) + f" {'median':>9} {'zero-var':>9}",
    ]
    for m in ("rlcs", "uniform"):
        z = f"{statistics.fmean(zv[m]):.3f}" if zv[m] else "n/a"
        med_cell = cell(med[m], int(med_lo[m]))
        lines.append(f"{m:<9} " + " ".join(f"{cell(x, b):>9}" for x, b in zip(need[m], budget[m]))
                     + f" {med_cell:>9} {z:>9}")
    lines += ["", f"rollouts to target, RLCS ÷ uniform (median over {len(seeds)} seeds): {shown}   (goal ≤ 0.7)"]
    summary = {"target": target, "ratio": None if math.isnan(ratio) else ratio, "ratio_text": shown,
               "median": {m: (None if math.isinf(v) else v) for m, v in med.items()},
               "zero_variance_frac": {m: (statistics.fmean(v) if v else None) for m, v in zv.items()}}
    return "\n".join(lines), summary


if __name__ == "__main__":
    raise SystemExit(main())
