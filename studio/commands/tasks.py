"""Generate synthetic visual reasoning tasks (shapes, position, size, arithmetic) as SFT/RL files.

Writes ``OUT/sft.jsonl`` (GLM-4.1V fine-tune format, one multi-turn chat per image),
``OUT/rl.jsonl`` (one prompt per question with answer, task_type, difficulty, family),
``OUT/eval.jsonl`` (held-out prompts, when ``--eval-n`` > 0) and the PNGs in ``OUT/images``.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from studio.engine.workshop.tasks import ALL_FAMILIES, FAMILIES, LEVELS

    p.add_argument("--out", required=True, help="folder to write (created; files there are overwritten)")
    p.add_argument("--n", type=int, default=200, help="number of questions in sft.jsonl / rl.jsonl")
    p.add_argument("--seed", type=int, default=0, help="seed: the same seed writes identical bytes")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=ALL_FAMILIES,
                   help="task families to include (grounding: boxes, opt-in)")
    p.add_argument("--levels", nargs="+", type=int, default=list(LEVELS), choices=LEVELS,
                   help="difficulty levels to include (1 easy .. 3 hard)")
    p.add_argument("--eval-n", type=int, default=0,
                   help="also write eval.jsonl with this many held-out prompts (seed + 1000)")
    p.add_argument("--questions", default=None, metavar="REGEX",
                   help="keep only questions matching this regular expression, e.g. 'at the (top|bottom)'")
    p.add_argument("--eval-seed", type=int, default=None,
                   help="seed of the held-out scenes (default: seed + 1000)")


def run(args: argparse.Namespace) -> int:
    from studio.engine.workshop.task_files import write_dataset

    counts = write_dataset(args.out, args.n, args.seed, args.families, args.levels, eval_n=args.eval_n,
                           eval_seed=args.eval_seed, questions=args.questions)
    for name, k in counts.items():
        print(f"wrote {k} rows to {args.out}/{name}")
    return 0
