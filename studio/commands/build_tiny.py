"""Build the embedded tiny GLM-4.1V (random weights) into a folder with save_pretrained."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="folder to write (created; files there are overwritten)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def run(args: argparse.Namespace) -> int:
    from studio.engine.tiny import build_tiny

    out = build_tiny(args.out, seed=args.seed)
    print(f"wrote the tiny GLM-4.1V to {out}")
    return 0
