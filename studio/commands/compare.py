"""Run one prompt on two models (A, then B), streamed and labelled, with per-side stats.

Example::

    studio compare --a zai-org/GLM-4.1V-9B-Base --b zai-org/GLM-4.1V-9B-Thinking \\
        --image photo.jpg "How many people are there?"
    studio compare --a zai-org/GLM-4.1V-9B-Thinking --b zai-org/GLM-4.6V-Flash --image photo.jpg "…"
    studio compare --a zai-org/GLM-4.6V-Flash --b zai-org/GLM-4.6V-Flash --b-no-thinking "…"

Defaults: A = toy-base (completion prompt), B = toy-thinking (chat) when the workshop
models are installed, else the embedded tiny model on both sides (random weights).
Thinking is dimmed on a terminal (``--no-color`` or ``NO_COLOR=1``: plain text).
``--vote A`` appends the result to ``<runs>/compare-votes/<date>/votes.jsonl``.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", help="the question / instruction for both sides")
    for s in ("a", "b"):
        S = s.upper()
        p.add_argument(f"--{s}", dest=f"{s}_model", default=None,
                       help=f"side {S}: hub id, folder, 'embedded', 'toy-base' or 'toy-thinking'")
        p.add_argument(f"--{s}-adapter", default=None, help=f"LoRA adapter folder for side {S} (same weights)")
        p.add_argument(f"--{s}-mode", choices=("auto", "base", "chat"), default="auto",
                       help=f"side {S} prompt style: base = completion prompt without chat roles; "
                            f"auto = base for *-Base/toy-base models, else chat")
        p.add_argument(f"--{s}-4bit", action="store_true", help=f"load side {S} in 4-bit (CUDA)")
        p.add_argument(f"--{s}-no-thinking", action="store_true",
                       help=f"side {S}: thinking off (GLM-4.6V-Flash-style models; e.g. the same model "
                            f"on both sides, one with this flag)")
    media = p.add_mutually_exclusive_group()
    media.add_argument("--image", action="append", default=[], help="image file (repeat for several)")
    media.add_argument("--video", default=None, help="one video file")
    media.add_argument("--pdf", default=None, help="one PDF (pages become images)")
    p.add_argument("--system", default=None, help="system prompt (base side: plain text on top)")
    p.add_argument("--few-shot", default=None,
                   help="JSON list of {question, answer} examples for the base-style side")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--base-max-new-tokens", type=int, default=None,
                   help="token cap of a base-style side (default 256)")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--thinking-budget", type=int, default=0, help="chat side: tokens of thinking before forcing the answer")
    p.add_argument("--seed", type=int, default=None, help="same seed on both sides (random if unset; printed)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--vote", choices=("A", "B", "tie", "both_bad"), default=None,
                   help="record a vote for this comparison in the preference file")
    p.add_argument("--runs-dir", default=None, help="where compare-votes/ goes (default $STUDIO_RUNS or runs)")
    p.add_argument("--no-color", action="store_true", help="never use ANSI colours (also: NO_COLOR=1)")


def _sides(args):
    from studio.engine.infer.compare import SideSpec, default_mode, default_pair

    da, db, note = default_pair()
    out = []
    for s, d in (("a", da), ("b", db)):
        model = getattr(args, f"{s}_model")
        mode = getattr(args, f"{s}_mode")
        if model is None:
            side = SideSpec(d.model, mode=d.mode if mode == "auto" else mode)
        else:
            side = SideSpec(model, mode=default_mode(model) if mode == "auto" else mode)
        side.adapter = getattr(args, f"{s}_adapter")
        side.load_in_4bit = bool(getattr(args, f"{s}_4bit"))
        side.thinking = not getattr(args, f"{s}_no_thinking")
        side.validate()
        out.append(side)
    used_default = args.a_model is None and args.b_model is None
    return out[0], out[1], note if used_default else None


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from studio.config import GenerationConfig
    from studio.engine.infer.chat import AnswerDelta, Done, ForcedAnswer, ThinkingDelta
    from studio.engine.infer.compare import (CompareDone, Comparer, CompareSettings, SideEvent, SideStart, VoteLog,
                                       votes_folder)
    from studio.commands.chat import DIM, RESET
    from studio.errors import InputError
    from studio.ui.render import cut_note

    a, b, note = _sides(args)
    Comparer.check_thinking(a, b)  # refuse either side's thinking switch before A runs
    few = []
    if args.few_shot:
        try:
            few = json.loads(args.few_shot)
        except ValueError as e:
            raise InputError(f"--few-shot must be a JSON list of {{question, answer}} objects: {e}") from None
    settings = CompareSettings(
        gen=GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                             top_k=args.top_k, thinking_budget=args.thinking_budget, seed=args.seed),
        few_shot=few if isinstance(few, list) else [], system=args.system, device=args.device,
    )
    if args.base_max_new_tokens is not None:
        settings.base_max_new_tokens = args.base_max_new_tokens
    settings.validate()
    paths = list(args.image or []) + ([args.video] if args.video else []) + ([args.pdf] if args.pdf else [])
    out = sys.stdout
    color = out.isatty() and not args.no_color and not os.environ.get("NO_COLOR")
    dim, reset = (DIM, RESET) if color else ("", "")
    comparer = Comparer()
    if note:
        print(note, file=out)
    plan = comparer.plan(a, b, args.device)
    print(f"Memory plan: {plan.sentence}", file=out)
    for n in comparer.notes(a, b):
        if n != note and not (note and n in note):
            print(f"Note: {n}", file=out)
    result = None
    in_thinking = False
    for ev in comparer.stream(a, b, args.question, settings=settings, media_paths=paths or None):
        if isinstance(ev, SideStart):
            print(f"\n── {ev.side}: {ev.label} · {ev.prompt_style} ──", file=out)
            in_thinking = False
        elif isinstance(ev, SideEvent):
            e = ev.event
            if isinstance(e, ThinkingDelta):
                if not in_thinking:
                    print("[thinking] ", end="", file=out)
                    in_thinking = True
                print(f"{dim}{e.text}{reset}", end="", file=out, flush=True)
            elif isinstance(e, ForcedAnswer):
                print(f"\n[thinking budget spent after {e.thinking_tokens} tokens: answer forced]", end="", file=out)
            elif isinstance(e, AnswerDelta):
                if in_thinking:
                    print("\n[answer] ", end="", file=out)
                    in_thinking = False
                print(e.text, end="", file=out, flush=True)
            elif isinstance(e, Done):
                s = e.stats
                print(f"\n[{ev.side}] TTFT {s.ttft_s:.2f} s · {s.rate_text} · "
                      f"thinking {s.thinking_tokens} / answer {s.answer_tokens} tokens · "
                      f"forced answer: {'yes' if s.forced_answer else 'no'}"
                      f"{' · ' + cut_note(s) if s.truncated else ''}", file=out)
        elif isinstance(ev, CompareDone):
            result = ev.result
    if result is not None:
        print(f"\nseed {result.settings['gen']['seed']} (same for both sides)", file=out)
    if args.vote and result is not None:
        runs = args.runs_dir or os.environ.get("STUDIO_RUNS", "runs")
        log = VoteLog(votes_folder(runs))
        log.record(result, args.vote)
        print(f"vote {args.vote} appended to {log.path}", file=out)
    return 0
