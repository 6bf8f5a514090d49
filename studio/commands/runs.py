"""List training runs (id, kind, status, step, last loss/reward); ``--json`` for scripts.

The table is read from the run folders alone (status.json, progress.json, metrics.jsonl),
so it works while the app is closed and for runs started from a terminal.
"""

from __future__ import annotations

import argparse
import json
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default=os.environ.get("STUDIO_RUNS", "runs"),
                   help="folder holding the run folders (default: $STUDIO_RUNS or runs/)")
    p.add_argument("--kind", default=None, help="only runs of this kind (sft, rl…)")
    p.add_argument("--json", action="store_true", help="print a JSON list with every field and final metric")


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text table with a dashed rule under the header."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from studio.engine.train.runs import list_runs, runs_table

    infos = list_runs(args.runs_dir, kind=args.kind)
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=1))
        return 0
    if not infos:
        print(f"No runs in {args.runs_dir}/ yet. Start one from the SFT or RL tab, or with "
              f"`studio sft --config …`.")
        return 0
    print(format_table(runs_table(infos), ["id", "kind", "status", "step", "loss/reward"]))
    return 0
