"""Score a model folder on a task file: format-correct % and accuracy % per family × difficulty.

The task file is an RL/eval prompt JSONL as written by ``studio tasks`` (``prompt``,
``images``, ``answer``, ``task_type``, ``family``, ``difficulty``, ``choices``).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="embedded", help="model folder, hub id, or 'embedded'")
    p.add_argument("--adapter", default=None,
                   help="a LoRA adapter folder (a run's adapter/ or checkpoint-N/) on top of --model; "
                        "scored in the think/answer format unless --mode says otherwise")
    p.add_argument("--tasks", default=None, help="prompt JSONL, e.g. sample_data/workshop/eval.jsonl")
    p.add_argument("--n", type=int, default=20, help="prompts to score, spread over family x level (0: all)")
    p.add_argument("--greedy", action="store_true", default=True, help="greedy decoding (default)")
    p.add_argument("--sample", dest="greedy", action="store_false", help="sample (at --temperature) instead")
    p.add_argument("--mode", choices=("auto", "thinking", "plain"), default="auto",
                   help="thinking: boxed answer in the think/answer format; plain: Base-style text; "
                        "auto: plain for stage=base folders")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", default=None, help="also write the full report (every output) to this file")
    p.add_argument("--show", type=int, default=0, help="print this many raw outputs")
    p.add_argument("--by-answer", action="store_true",
                   help="also print accuracy per reference answer and how often each answer was given "
                        "(does a gain come from the task or from saying the common answer more often?)")
    p.add_argument("--pass-at", type=int, default=0, metavar="K",
                   help="also sample K answers per prompt (and K with the image swapped for another of its "
                        "family x level) and print greedy, pass@1, pass@K and how much the right answers "
                        "follow the image: is there headroom for RL on this slice?")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of --pass-at and --sample")
    p.add_argument("--chat-check", type=int, default=0, metavar="N",
                   help="also ask 'How many red circles?' about N held-out scenes the way the Chat tab "
                        "does (its default sampling settings): half with none, a quarter with one, a "
                        "quarter with two or more")


def run(args: argparse.Namespace) -> int:
    import torch

    from studio.config import ModelSpec
    from studio.engine.workshop.evaluate import chat_check, evaluate
    from studio.engine.infer.models import load
    from studio.errors import InputError

    if not args.tasks and not args.chat_check:
        raise InputError("Nothing to score: pass --tasks FILE (e.g. sample_data/workshop/eval.jsonl) "
                         "and/or --chat-check N.")
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    loaded = load(ModelSpec(name_or_path=args.model, adapter=args.adapter, device="cpu"))
    mode = "thinking" if args.adapter and args.mode == "auto" else args.mode
    label = f"{args.model} + {args.adapter}" if args.adapter else args.model
    if args.tasks:
        rep = evaluate(label, args.tasks, n=args.n or None, greedy=args.greedy, mode=mode, temperature=args.temperature,
                       max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, loaded=loaded)
        for r in rep.results[: args.show]:
            print(f"[{r.family}/{r.difficulty}] answer={r.answer!r} ok={r.correct} :: {r.output!r}")
        print(rep.table())
        if args.by_answer:
            print("\naccuracy by reference answer (predicted % far above share %: the answer prior, not the task)")
            print(rep.answer_table())
        report = rep.to_json()
        if args.pass_at:
            from studio.engine.workshop.evaluate import stratified
            from studio.engine.workshop.learnability import learnability, learnability_table
            from studio.engine.workshop.task_files import load_task_rows

            rows = stratified(load_task_rows(args.tasks), args.n or None)
            learn = learnability(*loaded, rows, k=args.pass_at, temperature=args.temperature,
                                 max_new_tokens=args.max_new_tokens)
            print(f"\nlearnability (k = {args.pass_at}, temperature {args.temperature:g}): right samples that "
                  "vanish when the image is swapped follow the image")
            print(learnability_table(learn))
            report["learnability"] = learn
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=1)
    if args.chat_check:
        c = chat_check(*loaded, n=args.chat_check)
        for ex in c["examples"][: args.show]:
            print(f"[chat] answer={ex['answer']} :: {ex['output']!r}")
        by = " · ".join(f"{k}: {100 * v:.0f} %" for k, v in c["by_count"].items())
        print(f"chat check \"How many red circles?\" on {c['n']} held-out scenes (Chat tab defaults): "
              f"format {100 * c['format']:.0f} % · accuracy {100 * c['accuracy']:.0f} % "
              f"(always '0': {100 * c['zero_baseline']:.0f} %) · {c['thinking_tokens']:.0f} thinking tokens "
              f"on average\n  accuracy by number of red circles: {by}")
    return 0
