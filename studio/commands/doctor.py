"""Check a dataset and print its problems per row: `studio doctor DATA [--max-length N] [--fix out.jsonl]`.

First it says how the file was read: the source format of the rows ("read as ShareGPT …"),
and whether it is SFT data or RL prompts and why (decided by the columns, for every file
type; ``--sft`` / ``--rl`` decide instead). SFT data then goes through the same data doctor
as training (:func:`studio.engine.train.data.doctor`): tag order and balance in assistant
turns, <image>/<video> placeholders vs the media lists, media files that exist and decode,
visual tokens per row and whether each row fits ``--max-length`` without cutting an image
span, language-mix and repetition warnings, and how many assistant answers carry loss
under ``--policy``. RL prompts get their references checked by each row's verifier. Exit
status 1 when there are errors, 0 otherwise. ``--fix`` writes a copy with the safe fixes
applied (``--add-empty-think`` adds the one that invents an empty thinking).

LLaMA-Factory data: pass its ``data/`` folder (or ``--dataset-info data/dataset_info.json``)
and ``--dataset NAME``; the entry's file, column and role names are used.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``studio doctor``."""
    p.add_argument("data", nargs="?", default=None,
                   help="dataset file or folder (.jsonl/.json/.csv/.parquet, a save_to_disk folder, or "
                        "LLaMA-Factory's data/ folder)")
    p.add_argument("--dataset-info", default=None, metavar="FILE",
                   help="a LLaMA-Factory dataset_info.json whose entry (--dataset) says the file, columns and roles")
    p.add_argument("--dataset", default=None, metavar="NAME", help="the dataset_info.json entry to read")
    p.add_argument("--model", default=None, help="model whose processor counts tokens and whose family's "
                   "tags are expected (default: embedded, GLM-4.1V)")
    p.add_argument("--max-length", type=int, default=4096, help="tokens per row the training will allow")
    p.add_argument("--policy", default="last_thinking", help="loss policy (last_thinking, answer_only, all_turns)")
    p.add_argument("--no-decode", action="store_true", help="only check that media files exist (faster)")
    p.add_argument("--fix", metavar="OUT", help="write a fixed copy (GLM fine-tune JSONL) to OUT")
    p.add_argument("--add-empty-think", action="store_true",
                   help="with --fix: also turn answer-only rows into <think>\\n</think><answer>…</answer>")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--rl", action="store_true",
                      help="check as RL prompts (every reference answer scoreable by its row's verifier, media "
                           "present); default: decided by the columns")
    kind.add_argument("--sft", action="store_true", help="check as SFT data (default: decided by the columns)")


def detect(args: argparse.Namespace):
    """:class:`~studio.engine.train.data.Kind` of ``args.data`` (``--rl`` / ``--sft`` win).

    Raises: DataError when the data cannot be opened (missing, empty, invalid JSON).
    """
    from studio.engine.train.data import Kind, dataset_info, detect_kind
    from studio.engine.train.data.sources import open_sources

    if args.rl:
        return Kind("rl", "--rl was given")
    if args.sft:
        return Kind("sft", "--sft was given")
    path, entry = dataset_info.resolve(args.data, args.dataset_info, args.dataset)
    if entry is not None:
        return Kind("sft", f"LLaMA-Factory entry '{entry.name}' ({entry.formatting}) is SFT data")
    problems: list = []
    sources = open_sources(path, problems=problems)
    return detect_kind(next((s.first() for s in sources if len(s)), {}))


def run_rl(args: argparse.Namespace, kind) -> int:
    """RL prompts: load (media, answers present), say how the rows were read, check every reference."""
    from studio.engine.train.data.coverage import _rows
    from studio.engine.train.rl import check_references, load_prompts
    from studio.errors import DataError

    prompts = load_prompts(args.data, dataset_info=args.dataset_info, dataset=args.dataset)
    cols = lambda c: ", ".join(f"`{k}` ({n})" for k, n in c.most_common())  # noqa: E731
    print(f"read as RL prompts: prompt from {cols(prompts.text_columns)}, reference from "
          f"{cols(prompts.answer_columns)} — {kind.reason}.")
    n_img, n_vid = sum(len(p.images) for p in prompts), sum(len(p.videos) for p in prompts)
    if n_img or n_vid:
        written = (f"; {prompts.media_written} embedded image(s) written once to .studio_media/ beside the data"
                   if prompts.media_written else "")
        print(f"media: {n_img} image(s), {n_vid} video(s){written}.")
    if prompts.dropped_turns:
        print(f"note: {_rows(prompts.dropped_turns)} hold earlier turns in their messages; the prompt is the last "
              f"user turn (earlier turns are not shown to the model).")
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
    from studio.errors import DataError

    if not args.data and not args.dataset_info:
        raise DataError("Pass the data to check: studio doctor FILE (or --dataset-info FILE --dataset NAME).")
    try:
        kind = detect(args)
    except DataError:
        kind = None  # the SFT doctor turns an unreadable file into a one-line report
    if kind is not None and kind.kind == "rl":
        return run_rl(args, kind)
    from transformers import AutoProcessor

    from studio.engine.infer import family
    from studio.engine.infer.models import resolve
    from studio.engine.train import data as D

    processor = AutoProcessor.from_pretrained(resolve(args.model or "embedded"), trust_remote_code=False)
    fam = family.of(processor)  # the tags this model writes: the doctor flags the other family's
    print(f"checking tags for {fam.label}: {fam.format_hint}")
    rows, rep = D.diagnose(args.data, processor, args.max_length, policy=args.policy, decode=not args.no_decode,
                           dataset_info=args.dataset_info, dataset=args.dataset, kind=kind)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=1, ensure_ascii=False))
    else:
        print(rep.to_markdown())
    if args.fix and rows:
        choices = (["close_answer"] + (["add_empty_think"] if args.add_empty_think else [])
                   if fam.answer_tags else ["drop_answer_tags"])
        fixed, n = D.auto_fix(rows, choices)
        out = D.save_rows(fixed, args.fix)
        print(f"\nfixed {n} assistant turns ({', '.join(choices)}); wrote {len(fixed)} rows to {out}")
        left = sum(1 for p in rep.problems if p.auto_fixable == "add_empty_think") if not args.add_empty_think else 0
        if left and fam.answer_tags:
            print(f"{left} answer-only turns were left as they are; add --add-empty-think to give them an empty "
                  f"<think></think>.")
    return 1 if rep.summary["errors"] else 0
