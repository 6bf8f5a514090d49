"""Build a tiny random-weight replica of a GLM-V family (GLM-4.1V or GLM-4.6V-Flash) into a folder.

Example::

    studio build-tiny --like glm-4.6v-flash --out /tmp/tiny46
"""

from __future__ import annotations

import argparse

from studio.engine.infer.tiny import LIKE_CHOICES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", nargs="?", default=None, help="folder to write (same as --out)")
    p.add_argument("--out", dest="out_opt", default=None, metavar="DIR",
                   help="folder to write (created; files there are overwritten)")
    p.add_argument("--like", choices=LIKE_CHOICES, default="glm-4.1v",
                   help="which family to mirror: token ids, special flags, chat template, "
                        "generation defaults (default: glm-4.1v, the embedded model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def run(args: argparse.Namespace) -> int:
    from studio.engine.infer.tiny import build_tiny
    from studio.errors import InputError

    out = args.out_opt or args.out
    if not out:
        raise InputError("Say where to write the model: studio build-tiny --out DIR [--like glm-4.6v-flash].")
    path = build_tiny(out, seed=args.seed, like=args.like)
    print(f"wrote a tiny {args.like} replica (random weights) to {path}")
    return 0
