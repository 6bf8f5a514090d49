"""``studio`` command line. Every tab's work is also a command here.

Subcommands live in ``studio/commands/<name>.py``; each module defines
``add_arguments(parser)`` and ``run(args) -> int``. They are imported lazily so that
``studio --help`` is instant and ``studio chat`` never imports gradio.
User-fixable errors (:class:`~studio.errors.StudioError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help). The first is what a bare ``studio`` runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "ui": ("studio.commands.ui", "start the web app (default)"),
    "chat": ("studio.commands.chat", "chat with a model about images, a video or a PDF in the terminal"),
    "compare": ("studio.commands.compare", "run one prompt on two models (A and B) side by side"),
    "doctor": ("studio.commands.doctor", "check an SFT/RL dataset and report problems per row"),
    "sft": ("studio.commands.sft", "fine-tune into the think/answer format: LoRA, QLoRA or full fine-tuning"),
    "rl": ("studio.commands.rl", "GRPO with curriculum sampling (RLCS)"),
    "export": ("studio.commands.export", "merge an adapter into its base model and verify the round trip"),
    "runs": ("studio.commands.runs", "list training runs with their final metrics"),
    "eval": ("studio.commands.eval", "score a model folder on a task file"),
    "tasks": ("studio.commands.tasks", "generate synthetic visual reasoning tasks"),
    "scale": ("studio.commands.scale", "write accelerate/DeepSpeed files to run an SFT/RL run on many GPUs"),
    "toy-train": ("studio.commands.toy_train", "train the workshop model (toy-base / toy-thinking) from scratch on CPU"),
    "build-tiny": ("studio.commands.build_tiny", "build a tiny GLM-4.1V or GLM-4.6V-Flash replica into a folder"),
}


def _load(name: str):
    module, _ = COMMANDS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studio",
        description="GLM-4.1V Studio: chat with, compare and fine-tune GLM-4.1V models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip().splitlines()[0])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``studio`` console script and ``python -m studio``."""
    from studio.errors import StudioError
    from studio.runtime import quiet_defaults

    quiet_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["ui", *argv]
    args = build_parser().parse_args(argv)
    if not getattr(args, "_run", None):
        build_parser().print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except StudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
