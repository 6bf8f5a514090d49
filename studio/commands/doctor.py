"""Check an SFT dataset and print its problems per row: `studio doctor data.jsonl [--max-length N] [--fix out.jsonl]`.

Runs the same data doctor as training (:func:`studio.engine.train.data.doctor`): tag order and
balance in assistant turns, <image>/<video> placeholders vs the media lists, media files
that exist and decode, visual tokens per row and whether each row fits ``--max-length``
without cutting an image span, language-mix and repetition warnings. Exit status 1 when
there are errors, 0 otherwise. ``--fix`` writes a copy with the safe fixes applied.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``studio doctor``."""
    p.add_argument("data", help="dataset file or folder (.jsonl/.json/.csv/.parquet or a save_to_disk folder)")
    p.add_argument("--model", default=None, help="model whose processor counts tokens and whose family's "
                   "tags are expected (default: embedded, GLM-4.1V)")
    p.add_argument("--max-length", type=int, default=4096, help="tokens per row the training will allow")
    p.add_argument("--policy", default="last_thinking", help="loss policy (last_thinking, answer_only, all_turns)")
    p.add_argument("--no-decode", action="store_true", help="only check that media files exist (faster)")
    p.add_argument("--fix", metavar="OUT", help="write a fixed copy (GLM fine-tune JSONL) to OUT")
    p.add_argument("--add-empty-think", action="store_true",
                   help="with --fix: also turn answer-only rows into <think>\\n</think><answer>…</answer>")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--rl", action="store_true",
                   help="an RL prompt file: check that every reference answer is scoreable by its "
                        "row's verifier (task_type) and that media exist (auto when rows have 'answer')")


def _is_rl_file(path: str) -> bool:
    """True when the first row of a JSONL file has a reference ``answer`` and no ``messages``."""
    from pathlib import Path

    p = Path(path)
    if p.suffix.lower() != ".jsonl" or not p.is_file():
        return False
    with p.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    return False
                return isinstance(row, dict) and "answer" in row and "messages" not in row
    return False


def run_rl(args: argparse.Namespace) -> int:
    """RL prompt file: load (path rules, media, answers present) and check every reference."""
    from studio.engine.train.rl import check_references, load_prompts
    from studio.errors import DataError

    prompts = load_prompts(args.data)
    try:
        check_references(prompts)
    except DataError as e:
        print(f"error: {e}")
        return 1
    kinds: dict[str, int] = {}
    for pr in prompts:
        tt = pr.row.get("task_type") or "default"
        kinds[tt] = kinds.get(tt, 0) + 1
    print(f"{len(prompts)} RL prompts; every reference answer is scoreable "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items()))}).")
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the report table; exit 1 if any error was found."""
    if args.rl or _is_rl_file(args.data):
        return run_rl(args)
    from transformers import AutoProcessor

    from studio.engine.train import data as D
    from studio.engine.infer.models import resolve

    from studio.engine.infer import family

    processor = AutoProcessor.from_pretrained(resolve(args.model or "embedded"), trust_remote_code=False)
    fam = family.of(processor)  # the tags this model writes: the doctor flags the other family's
    print(f"checking tags for {fam.label}: {fam.format_hint}")
    rows, rep = D.diagnose(args.data, processor, args.max_length, policy=args.policy, decode=not args.no_decode)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=1, ensure_ascii=False))
    else:
        print(rep.to_markdown())
    if args.fix and rows:
        choices = (["close_answer"] + (["add_empty_think"] if args.add_empty_think else [])
                   if fam.answer_tags else ["drop_answer_tags"])
        fixed, n = D.auto_fix(rows, choices)
        out = D.save_rows(fixed, args.fix)
        print(f"\nfixed {n} assistant turns; wrote {len(fixed)} rows to {out}")
    return 1 if rep.summary["errors"] else 0
