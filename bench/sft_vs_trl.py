"""`studio sft` engine vs a plain TRL SFTTrainer script: same model, data and settings.

Each side runs in a fresh subprocess (so imports and caches do not leak between them) and
reports training samples/s (TRL's ``train_samples_per_second``: rows / train() wall time)
and peak RSS (``ru_maxrss``). Prints the ratios studio/TRL; goals: samples/s ≥ 0.95,
peak RSS ≤ 1.05.

The plain script is what a TRL user would write for GLM-4.1V: TRL-format rows with PIL
images, the same LoRA (language-model linears by path regex), ``assistant_only_loss=True``
with the same training template (the official template has no generation markers).

    python bench/sft_vs_trl.py [--steps 20] [--batch-size 4] [--model embedded] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "sample_data" / "sft" / "train.jsonl"


def common(args):
    return dict(rank=8, alpha=16, lr=1e-3, steps=args.steps, batch=args.batch_size, max_length=512, seed=0)


def run_studio(args, out: Path) -> dict:
    from studio.config import ModelSpec
    from studio.engine.train.metrics import read_metrics
    from studio.engine.train.sft import LoraSpec, SFTRunConfig, train

    c = common(args)
    cfg = SFTRunConfig(model=ModelSpec(name_or_path=args.model, device=args.device), data=str(DATA),
                       lora=LoraSpec(rank=c["rank"], alpha=c["alpha"], dropout=0.0), learning_rate=c["lr"],
                       max_steps=c["steps"], batch_size=c["batch"], grad_accum=1, max_length=c["max_length"],
                       eval_split=0.0, save_steps=10_000, report_to=["none"], seed=c["seed"], lr_scheduler="constant")
    train(cfg, out, log_fn=lambda m: None)
    summ = [r for r in read_metrics(out / "metrics.jsonl") if r.get("kind") == "summary"][-1]
    return {"samples_per_s": summ["summary/train_samples_per_second"]}


def run_trl(args, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from studio.engine.train.data import TRAIN_TEMPLATE_PATH
    from studio.engine.infer.models import resolve

    c = common(args)
    path = resolve(args.model)
    processor = AutoProcessor.from_pretrained(path)
    processor.chat_template = TRAIN_TEMPLATE_PATH.read_text()
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32 if args.device == "cpu" else "auto")
    rows = []
    for line in DATA.read_text().splitlines():
        r = json.loads(line)
        msgs = []
        for m in r["messages"]:
            if m["role"] == "user":
                parts = m["content"].split("<image>")
                content = [{"type": "image"} for _ in parts[:-1]] + [{"type": "text", "text": parts[-1]}]
            else:
                content = [{"type": "text", "text": m["content"]}]
            msgs.append({"role": m["role"], "content": content})
        rows.append({"messages": msgs, "images": [Image.open(DATA.parent / p).convert("RGB") for p in r["images"]]})
    ds = Dataset.from_list(rows)
    lora = LoraConfig(r=c["rank"], lora_alpha=c["alpha"], lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=r"(?:.*\.)?language_model\.layers\.\d+\.(?:self_attn|mlp)\."
                                     r"(?:q_proj|k_proj|v_proj|o_proj|gate_up_proj|down_proj)")
    cfg = SFTConfig(output_dir=str(out), per_device_train_batch_size=c["batch"], gradient_accumulation_steps=1,
                    learning_rate=c["lr"], max_steps=c["steps"], max_length=c["max_length"], logging_steps=1,
                    save_strategy="no", report_to="none", seed=c["seed"], lr_scheduler_type="constant",
                    use_cpu=args.device == "cpu", bf16=False, gradient_checkpointing=args.device != "cpu",
                    assistant_only_loss=True, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=processor, peft_config=lora)
    res = trainer.train()
    return {"samples_per_s": res.metrics["train_samples_per_second"]}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = (run_studio if args.child == "studio" else run_trl)(args, Path(tmp) / "run")
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per side (best samples/s, lowest RSS kept)")
    ap.add_argument("--child", choices=["studio", "trl"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    res: dict[str, list[dict]] = {"studio": [], "trl": []}
    for _ in range(args.repeat):
        for side in ("trl", "studio"):
            cmd = [sys.executable, __file__, "--child", side, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--model", args.model, "--device", args.device, "--threads", str(args.threads)]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not line:
                sys.exit(f"{side} failed:\n{p.stderr[-3000:]}")
            res[side].append(json.loads(line[-1][7:]))
    best = {s: {"samples_per_s": max(r["samples_per_s"] for r in v), "peak_rss_mb": min(r["peak_rss_mb"] for r in v)}
            for s, v in res.items()}
    for s, b in best.items():
        print(f"{s:7s} samples/s {b['samples_per_s']:.3f}  peak RSS {b['peak_rss_mb']:.0f} MB")
    sp = best["studio"]["samples_per_s"] / best["trl"]["samples_per_s"]
    rss = best["studio"]["peak_rss_mb"] / best["trl"]["peak_rss_mb"]
    print(f"samples/s ratio studio/TRL = {sp:.3f} (goal >= 0.95)")
    print(f"peak RSS ratio studio/TRL  = {rss:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
