"""``python -m studio.engine.workshop.toy_train``: the command line of :func:`~.loop.train`.
"""

from __future__ import annotations

import argparse
import sys
from studio.engine.workshop.toy_train.model import STAGES
from studio.engine.workshop.toy_train.loop import train


def add_arguments(p: argparse.ArgumentParser) -> None:
    """CLI arguments shared by ``python -m studio.engine.workshop.toy_train`` and ``studio toy-train``."""
    p.add_argument("stage", choices=sorted(STAGES), help="base (pretraining) or thinking (SFT)")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--init", default=None, help="model folder to start from (thinking: the toy-base)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default per stage)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch", type=int, default=None, help="images per step")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock budget (default per stage); LR and curriculum follow the larger of "
                        "step and time progress; 0 = step-based only (bit-reproducible)")
    p.add_argument("--save-minutes", type=float, default=5.0, help="checkpoint interval")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--eval-every", type=int, default=None, help="steps between probe + image-gap diagnostics")
    p.add_argument("--train-vision", action="store_true",
                   help="train the whole vision tower with the language model (default: the tower is "
                        "frozen after the vision pretraining)")
    p.add_argument("--visual-scale", type=float, default=0.5,
                   help="from scratch: scale the merger so visual tokens start with this std (0 = off)")
    p.add_argument("--train-merger", action="store_true",
                   help="train the merger with the language model, the rest of the vision tower frozen "
                        "(default: the whole tower is frozen while the language model trains)")
    p.add_argument("--position-std", type=float, default=1.0,
                   help="from scratch: fixed sine-cosine vision position embedding with this std (0 = random)")
    p.add_argument("--vision-steps", type=int, default=None,
                   help="from scratch: steps of dense vision pretraining before the language model trains "
                        "(default per stage; 0 = keep the random vision tower)")
    p.add_argument("--vision-minutes", type=float, default=None,
                   help="wall-clock cap of the vision pretraining (default per stage; 0 with --minutes 0)")
    p.add_argument("--families", nargs="+", default=None, metavar="FAMILY[:WEIGHT[:LEVELS]]",
                   help="training families, relative weights and levels, e.g. shapes position size arithmetic "
                        "grounding:1:12 (grounding at weight 1, levels 1-2 only; default: the four families "
                        "of v1 alike, every level)")
    p.add_argument("--drop-questions", default=None, metavar="REGEX",
                   help="questions matching this regular expression are not trained (e.g. leave "
                        "'at the (top|bottom)\\?' to RL)")
    p.add_argument("--flip-rows", type=float, default=0.0, metavar="P",
                   help="share of top/bottom box questions trained with a teacher's bottom-up row "
                        "convention (wrong box, trace says so): traces that mix two strategies, for "
                        "RL to pick the one that pays (default 0)")
    p.add_argument("--yx-boxes", type=float, default=0.0, metavar="P",
                   help="share of box answers trained y-first [y1,x1,y2,x2] (as in a dataset merged "
                        "from a y-first source): a mix for RL's IoU reward to settle (default 0)")
    p.add_argument("--min-gap", type=float, default=0.0,
                   help="stop early if the image gap (nats/token) is below this after 30%% of the run")


def parse_family_levels(specs: list[str] | None) -> dict[str, tuple[int, ...]] | None:
    """The levels part of ``--families``: ``["grounding:1:12"]`` → ``{"grounding": (1, 2)}``
    (families without one are absent; None when no family restricts its levels).

    Raises:
        InputError: a level that is not 1, 2 or 3.
    """
    from studio.errors import InputError

    out = {}
    for spec in specs or ():
        name, _, rest = spec.partition(":")
        levels = rest.partition(":")[2]
        if levels:
            if not levels.isdigit() or any(c not in "123" for c in levels):
                raise InputError(f"--families {spec}: the levels after the second ':' are digits 1–3, e.g. 12.")
            out[name] = tuple(sorted({int(c) for c in levels}))
    return out or None


def parse_family_weights(specs: list[str] | None) -> dict[str, float] | None:
    """``["shapes", "grounding:2"]`` → ``{"shapes": 1.0, "grounding": 2.0}`` (None stays None);
    a third part (``grounding:2:12``) names levels, see :func:`parse_family_levels`.

    Raises:
        InputError: unknown family, or a weight that is not a positive number.
    """
    from studio.engine.workshop.tasks import ALL_FAMILIES
    from studio.errors import InputError

    if not specs:
        return None
    out = {}
    for spec in specs:
        name, _, w = spec.partition(":")
        w = w.partition(":")[0]
        if name not in ALL_FAMILIES:
            raise InputError(f"Unknown family {name!r} in --families; choose from {', '.join(ALL_FAMILIES)}.")
        try:
            out[name] = float(w) if w else 1.0
        except ValueError:
            out[name] = -1.0
        if not out[name] > 0:
            raise InputError(f"--families {spec}: the weight after ':' must be a positive number.")
    return out


def run(args: argparse.Namespace) -> int:
    """Run one training stage from parsed arguments.

    Raises:
        InputError: ``--flip-rows`` or ``--yx-boxes`` outside 0–1.
    """
    from studio.errors import InputError

    for name, share in (("--flip-rows", args.flip_rows), ("--yx-boxes", args.yx_boxes)):
        if not 0.0 <= share <= 1.0:
            raise InputError(f"{name} must be a share between 0 and 1, not {share}.")
    train(args.stage, args.out, seed=args.seed, init=args.init, steps=args.steps, lr=args.lr,
          batch=args.batch, threads=args.threads, save_minutes=args.save_minutes,
          minutes=args.minutes, resume=args.resume, eval_every=args.eval_every or 100,
          freeze_vision=False if args.train_vision else None, min_gap=args.min_gap,
          visual_scale=args.visual_scale, position_std=args.position_std,
          freeze_merger=False if args.train_merger else None,
          vision_steps=args.vision_steps, vision_minutes=args.vision_minutes,
          family_weights=parse_family_weights(args.families), family_levels=parse_family_levels(args.families),
          drop_questions=args.drop_questions, flip_rows=args.flip_rows,
          yx_boxes=args.yx_boxes,
          command="python -m studio.engine.workshop.toy_train " + " ".join(sys.argv[1:]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m studio.engine.workshop.toy_train",
        description="Train the workshop model on CPU: stage 'base' from scratch (vision pretraining, then "
                    "captions and plain Q/A), stage 'thinking' from --init (SFT into the think/answer format). "
                    f"Defaults: base {STAGES['base'].vision_steps} vision + {STAGES['base'].steps} steps "
                    f"(cap {STAGES['base'].minutes:g} min), thinking {STAGES['thinking'].steps} steps "
                    f"(cap {STAGES['thinking'].minutes:g} min).")
    add_arguments(p)
    return run(p.parse_args(argv))
