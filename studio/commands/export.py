"""Merge a LoRA adapter into its base model, save it, and verify the round trip.

Example: ``studio export --adapter runs/<id>/adapter --out merged/ [--base zai-org/GLM-4.1V-9B-Thinking]
[--push your-name/glm4v-ft]``. The merged folder is only kept when the reloaded model's
greedy output on a sample (image + text) equals base + adapter's.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", required=True, help="PEFT adapter folder (e.g. runs/<id>/adapter)")
    p.add_argument("--out", required=True, help="folder for the merged model (must not exist unless --overwrite)")
    p.add_argument("--base", default=None,
                   help="base model: hub id, folder or 'embedded' (default: the adapter's base_model_name_or_path)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    p.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare check (not advised)")
    p.add_argument("--tokens", type=int, default=24, help="greedy tokens compared in the check (default 24)")
    p.add_argument("--prompt", default=None, help="text of the sample prompt")
    p.add_argument("--image", default=None, help="image of the sample prompt (default: a drawn test picture)")
    p.add_argument("--text-only", action="store_true", help="sample prompt without an image")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (after the check passes)")
    p.add_argument("--push", default=None, metavar="REPO", help="also upload to this Hub repo (needs HF_TOKEN)")
    p.add_argument("--public", action="store_true", help="with --push: create a public repo (default private)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from studio.config import ModelSpec
    from studio.engine.train.export import DEFAULT_PROMPT, ExportError, merge_adapter, push_to_hub
    from studio.errors import InputError

    if args.tokens < 1:
        raise InputError("--tokens must be at least 1.")
    base = None
    if args.base is not None:
        base = ModelSpec(name_or_path=args.base, device=args.device, dtype=args.dtype)
    elif args.dtype != "auto":
        import json as _json
        from pathlib import Path

        cfg = Path(args.adapter) / "adapter_config.json"
        try:
            name = _json.loads(cfg.read_text()).get("base_model_name_or_path")
        except (OSError, ValueError):
            name = None
        if name:
            base = ModelSpec(name_or_path=name, device=args.device, dtype=args.dtype)
    image = False if args.text_only else args.image
    try:
        report = merge_adapter(base, args.adapter, args.out, verify=not args.no_verify,
                               prompt=args.prompt or DEFAULT_PROMPT, image=image, n_tokens=args.tokens,
                               device=args.device, overwrite=args.overwrite)
    except ExportError as e:
        if args.json:
            print(json.dumps(e.report, indent=1))
        raise
    if args.push:
        report["pushed"] = push_to_hub(args.out, args.push, private=not args.public)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    s = report["seconds"]
    if report["verified"]:
        how = "identical" if report["match"] else f"equal up to a near-tie at token {report['first_difference']}"
        print(f"verified: greedy output of the merged model is {how} over {report['tokens_compared']} tokens")
        if not report.get("adapter_changes_output"):
            print("note: base and base + adapter give the same greedy output on this one check prompt; "
                  "that is common for an adapter trained on other prompts (score it with studio eval --adapter)")
    else:
        print("not verified (--no-verify)")
    print(f"merged model saved to {report['out_dir']} ({report['dtype']}, {s['total']:.1f} s)")
    if report.get("pushed"):
        print(f"pushed to {report['pushed']}")
    return 0
