"""The product's training loops against minimal hand-written loops, measured in one run.

Each side of each case runs in a fresh subprocess (imports and caches do not leak) with the
same torch threads, one after the other, ``--repeat`` times in alternation; the ratios use
the median (and the best and worst) of the repeats.

* **SFT** (``sft-full``: the workshop SFT recipe's shape — toy-base, full fine-tune of the
  language model with the vision tower frozen, batch 12 multi-turn rows of 4 questions,
  the recipe's data loader workers and logging — on ``--scenes`` freshly generated scenes;
  ``sft-lora``: LoRA r16 on the embedded tiny model and sample_data/sft): the product's
  engine (:func:`studio.engine.train.sft.train`, what ``studio sft`` runs) against a plain
  PyTorch loop on the same model, the same batches (the product's own
  :class:`~studio.engine.train.data.Collator`, the rows in the Trainer's order — checked
  by a checksum of the first batches), AdamW with the same settings, gradient clipping at
  1, fp32. Goal: steps/s ratio ≥ 0.9, peak RSS ratio ≤ 1.1.
* **RL** (the workshop RL recipe's shape: toy-thinking, B 4 × G 8, LoRA r16, thinking
  budget 72 + answer 12, temperature 1.2; uniform draw so every step has exactly B × G
  rollouts; no held-out evaluation or KL probe in the timed steps): one GRPO step's wall
  time split by the product's own ``time/*_s`` metrics (generate, reward, logprob, update,
  other) against raw batched ``model.generate`` of B × G completions plus one
  forward/backward/AdamW step on them. Goal: overhead beyond those two ≤ 15 %.
* **Generation**: tokens/s of the RL rollout generator (sampling, thinking budget, forced
  answers) and of ``studio eval``'s scoring (greedy, batches of 8) ÷ raw ``model.generate``
  on the same batch. Goal ≥ 0.9.

Also reported, per side: CPU seconds per step (the process and its data-loader workers),
a load-robust view when the machine is shared.

    python bench/train_overhead.py [--quick] [--cases sft-full,sft-lora,rl] [--steps 60]
                                   [--rl-steps 6] [--repeat 3] [--threads 2] [--scenes 600]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SFT_RECIPE = REPO / "sample_data" / "workshop" / "sft.yaml"
RL_RECIPE = REPO / "sample_data" / "workshop" / "rl.yaml"
LORA_DATA = REPO / "sample_data" / "sft" / "train.jsonl"
CASES = ("sft-full", "sft-lora", "rl")
WARM = 2  # steps left out of the steady rate on both sides (first-step allocation, worker start)


# --------------------------------------------------------------------------- measuring helpers
def _child_pids() -> list[str]:
    """Pids of this process's live child processes (empty when /proc cannot tell)."""
    try:
        return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    except OSError:
        return []


def _children_cpu() -> float:
    """CPU seconds of this process's live child processes (data-loader workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _child_pids():
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def _children_peak_rss_mb() -> float:
    """The largest peak RSS (VmHWM) among live child processes, MB."""
    best = 0.0
    for pid in _child_pids():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass
    return best


class StepMarks:
    """(wall, CPU) at each step end; the steady rate leaves out the first ``WARM`` steps."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.worker_rss = 0.0

    def mark(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time() + _children_cpu())
        self.worker_rss = max(self.worker_rss, _children_peak_rss_mb())

    def result(self) -> dict:
        k = min(WARM, len(self.wall) - 2) if len(self.wall) > 2 else 0
        n = len(self.wall) - 1 - k
        dt = self.wall[-1] - self.wall[k]
        return {"steps": len(self.wall), "timed_steps": n, "steps_per_s": n / dt if dt > 0 else None,
                "cpu_s_per_step": (self.cpu[-1] - self.cpu[k]) / n if n else None,
                "worker_peak_rss_mb": round(self.worker_rss, 1)}


def _batch_sum(batch: dict) -> int:
    """A checksum of one collated batch (token ids and labels, position-weighted)."""
    import torch

    ids = batch["input_ids"]
    w = torch.arange(1, ids.numel() + 1, dtype=torch.long).view_as(ids)
    return int((ids * w).sum() + (batch["labels"].clamp(min=0) * w).sum())


# --------------------------------------------------------------------------- cases: settings
def sft_settings(args, case: str, data: Path) -> dict:
    """The SFT config (a dict for ``SFTRunConfig``) both sides of ``case`` train with."""
    from studio.config import read_yaml_mapping

    if case == "sft-full":
        d = read_yaml_mapping(SFT_RECIPE)
        for k in ("tasks", "eval_data", "skill_eval_steps", "skill_eval_n"):
            d.pop(k, None)  # the skill evaluation is measured apart (its cost is in FACTS.md)
        d.update(data=str(data), max_steps=args.steps, save_steps=10 ** 6, name="bench-full")
        if args.quick:
            d.update(batch_size=2, logging_steps=1)
        return d
    return {"name": "bench-lora", "model": {"name_or_path": "embedded"}, "data": str(LORA_DATA),
            "finetuning": "lora", "lora": {"rank": 16, "alpha": 32, "dropout": 0.0}, "learning_rate": 2e-4,
            "max_steps": args.steps, "batch_size": 2 if args.quick else 4, "grad_accum": 1, "eval_split": 0,
            "save_steps": 10 ** 6, "logging_steps": 10, "lr_scheduler": "cosine", "seed": 0}


def rl_settings(args) -> dict:
    """The RL config (a dict for ``RLRunConfig``): the recipe's shape, uniform draw, no eval in the timed steps."""
    from studio.config import read_yaml_mapping
    from studio.engine.train.runs import resolve_recipe_paths

    d = read_yaml_mapping(RL_RECIPE)
    resolve_recipe_paths(d, str(RL_RECIPE))
    d.update(max_steps=args.rl_steps, eval_every=0, kl_every=0, save_every=10 ** 6, name="bench",
             curriculum={"mode": "uniform", "offline_grading": False}, format_gate="warn",
             format_gate_prompts=4, max_eval_prompts=8)
    if args.quick:
        d.update(num_generations=2, per_device_train_batch_size=4, thinking_budget=8, answer_budget=4)
    return d


# --------------------------------------------------------------------------- SFT sides
def child_sft_studio(args, case: str, data: Path, out: Path) -> dict:
    from studio.engine.train import data as D
    from studio.engine.train.metrics import read_metrics
    from studio.engine.train.sft import SFTRunConfig, train
    from transformers import TrainerCallback

    sums_path = out.parent / "studio_batches.txt"
    orig_call = D.Collator.__call__

    seen = [0]

    def recording_call(self, examples):  # checksums of the first 3 batches; runs in the loader worker too
        b = orig_call(self, examples)
        if seen[0] < 3:
            seen[0] += 1
            with open(sums_path, "a") as f:
                f.write(f"{_batch_sum(b)}\n")
        return b

    D.Collator.__call__ = recording_call
    marks = StepMarks()

    class Marks(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            marks.mark()

    cfg = SFTRunConfig.from_dict(sft_settings(args, case, data))
    t0 = time.perf_counter()
    train(cfg, out, callbacks=[Marks()], log_fn=lambda m: None)
    res = marks.result()
    res["train_call_s"] = time.perf_counter() - t0
    res["batches"] = [int(x) for x in sums_path.read_text().split()[:3]] if sums_path.exists() else []
    times = [r for r in read_metrics(out, kind="train") if "time/step_s" in r]
    if times:
        keys = sorted({k for r in times for k in r if k.startswith("time/")})
        res["phases"] = {k: statistics.median(r[k] for r in times if k in r) for k in keys}
    return res


def _trainer_order(n: int, seed: int, steps: int, batch: int) -> list[list[int]]:
    """The row indices of each batch in the Trainer's order: accelerate's seedable random
    sampler draws ``randperm(n)`` seeded with ``data_seed + epoch`` each epoch, cut into
    batches (the last one of an epoch may be short: no drop_last)."""
    import torch

    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < steps:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        plan += [perm[k:k + batch] for k in range(0, n, batch)]
        epoch += 1
    return plan[:steps]


def child_sft_hand(args, case: str, data: Path, out: Path) -> dict:
    """A plain PyTorch loop: collate (inline) → forward → backward → clip → AdamW → schedule."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, get_scheduler

    from studio.engine.infer.models import resolve
    from studio.engine.train.data import Collator, load_rows

    s = sft_settings(args, case, data)
    path = resolve((s.get("model") or {}).get("name_or_path", "embedded"))
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    if s.get("finetuning") == "full":
        for name, p in model.named_parameters():
            if ".visual." not in f".{name}":
                p.requires_grad_(True)
    else:
        from peft import LoraConfig, get_peft_model

        from studio.engine.train.sft import LoraSpec

        spec = LoraSpec(**s["lora"])
        model = get_peft_model(model, LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                                                 target_modules=spec.target_regex(), task_type="CAUSAL_LM"))
    model.train()
    rows = load_rows(s["data"])
    collate = Collator(processor, max_length=s.get("max_length", 4096), policy=s.get("policy", "last_thinking"))
    batch_size = s.get("batch_size", 1)
    plan = _trainer_order(len(rows), s.get("seed", 42), s["max_steps"], batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s["learning_rate"], betas=(0.9, s.get("adam_beta2", 0.999)),
                            weight_decay=s.get("weight_decay", 0.0))
    sched = get_scheduler(s.get("lr_scheduler", "cosine"), opt, num_warmup_steps=s.get("warmup_steps", 0),
                          num_training_steps=s["max_steps"])
    marks = StepMarks()
    sums = []
    t0 = time.perf_counter()
    for idx in plan:
        batch = collate([rows[i] for i in idx])
        if len(sums) < 3:
            sums.append(_batch_sum(batch))
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        marks.mark()
    res = marks.result()
    res["train_call_s"] = time.perf_counter() - t0
    res["batches"] = sums
    return res


# --------------------------------------------------------------------------- RL sides
_PROMPTS: dict = {}


def _rl_prompts(cfg, n: int, seed: int = 0) -> list:
    """``n`` prompts drawn (seeded) from the run's training prompts, as the product loads them."""
    import random

    from studio.engine.train.rl.prompts import load_prompts

    if cfg.data not in _PROMPTS:
        _PROMPTS[cfg.data] = load_prompts(cfg.data)
    ps = _PROMPTS[cfg.data]
    return [ps[i] for i in random.Random(seed).sample(range(len(ps)), n)]


def _eos(model, tok) -> list[int]:
    eos = model.generation_config.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos or [tok.eos_token_id])


def child_rl_studio(args, out: Path) -> dict:
    """The product's GRPO steps (their ``time/*_s`` split) and its two generation paths."""
    from transformers import TrainerCallback

    from studio.engine.train.metrics import read_metrics
    from studio.engine.train.rl.config import RLRunConfig
    from studio.engine.train.rl.run import build_trainer

    cfg = RLRunConfig.from_dict(rl_settings(args))
    trainer, _ = build_trainer(cfg, out, logger=lambda m: None)
    marks = StepMarks()

    class Marks(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            marks.mark()

    trainer.add_callback(Marks())
    t0 = time.perf_counter()
    trainer.train()
    res = {"train_call_s": time.perf_counter() - t0, **marks.result()}
    walls = [b - a for a, b in zip(marks.wall, marks.wall[1:])]
    res["step_s"] = statistics.median(walls) if walls else None
    recs = [r for r in read_metrics(out, kind="train") if "time/step_s" in r][1:]  # the first step warms up
    if recs:
        keys = sorted({k for r in recs for k in r if k.startswith("time/")})
        res["phases"] = {k: statistics.median(r.get(k, 0.0) for r in recs) for k in keys}
    res.update(gen_rl(args, cfg, product=True), **gen_eval(args, product=True))
    return res


def child_rl_raw(args, out: Path) -> dict:
    """Raw batched ``model.generate`` of B × G completions + one forward/backward/AdamW step, per step."""
    import random

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

    from studio.engine.infer.models import resolve
    from studio.engine.train.rl.config import RLRunConfig

    cfg = RLRunConfig.from_dict(rl_settings(args))
    path = resolve(cfg.model.name_or_path)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                             target_modules=cfg.lora_target, task_type="CAUSAL_LM"))
    tok = processor.tokenizer
    G, B = cfg.num_generations, cfg.prompts_per_step
    eos = _eos(model, tok) + [tok.convert_tokens_to_ids("</answer>")]
    gc = GenerationConfig(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                          max_new_tokens=cfg.thinking_budget + cfg.answer_budget, eos_token_id=eos,
                          pad_token_id=tok.pad_token_id)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
    rng = random.Random(cfg.seed)
    gen_s, upd_s, toks = [], [], []
    for step in range(cfg.max_steps):
        batch = _raw_batch(processor, _rl_prompts(cfg, B, seed=rng.randrange(10 ** 6)), G)
        t0 = time.perf_counter()
        with torch.no_grad():
            seq = model.generate(**batch, generation_config=gc)
        t1 = time.perf_counter()
        P = batch["input_ids"].shape[1]
        comp = seq[:, P:]
        cmask = _until_eos(comp, eos)
        att = torch.cat([batch["attention_mask"], cmask], 1)
        mm = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(comp)], 1)
        logits = model(input_ids=seq, attention_mask=att, mm_token_type_ids=mm, pixel_values=batch["pixel_values"],
                       image_grid_thw=batch["image_grid_thw"]).logits[:, P - 1:-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        adv = torch.randn(comp.shape[0], 1)
        loss = -(adv * logp * cmask).sum() / cmask.sum().clamp(min=1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        gen_s.append(t1 - t0)
        upd_s.append(t2 - t1)
        toks.append(int(cmask.sum()))
    k = 1 if len(gen_s) > 1 else 0  # the first step warms up
    res = {"gen_s": statistics.median(gen_s[k:]), "update_s": statistics.median(upd_s[k:]),
           "train_gen_tokens_per_s": sum(toks[k:]) / sum(gen_s[k:])}
    res.update(gen_rl(args, cfg, product=False, model=model, processor=processor), **gen_eval(args, product=False))
    return res


def _raw_batch(processor, prompts, G: int) -> dict:
    """B prompts × G copies, rendered and processed in one left-padded batch."""
    from PIL import Image

    texts, images = [], []
    for p in prompts:
        msgs = [{"role": "user", "content": [{"type": "image"} for _ in p.images] + [{"type": "text", "text": p.text}]}]
        text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        for _ in range(G):
            texts.append(text)
            images += [Image.open(x).convert("RGB") for x in p.images]
    return dict(processor(text=texts, images=images or None, return_tensors="pt", padding=True, padding_side="left"))


def _until_eos(comp, eos: list[int]):
    """(N, C) 1 up to and including each row's first EOS token, 0 after it."""
    import torch

    hit = torch.isin(comp, torch.tensor(eos)).long()
    after = (hit.cumsum(1) - hit) > 0
    return (~after).long()


def gen_rl(args, cfg, *, product: bool, model=None, processor=None) -> dict:
    """Tokens/s of B × G sampled rollouts: the product's ``RolloutGenerator`` (budget, forced
    answers) or one raw ``model.generate`` to the same total budget; same seed, prompts and model."""
    import torch

    if product:
        from peft import LoraConfig, get_peft_model

        from studio.engine.infer.models import load
        from studio.engine.train.rl.prompts import PromptEncoder
        from studio.engine.train.rl.rollouts import RolloutGenerator

        model, processor = load(cfg.model)
        model = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                                 lora_dropout=cfg.lora_dropout, target_modules=cfg.lora_target,
                                                 task_type="CAUSAL_LM"))
        gen = RolloutGenerator(processor, thinking_budget=cfg.thinking_budget, answer_budget=cfg.answer_budget,
                               temperature=cfg.temperature, top_p=cfg.top_p, eos_ids=_eos(model, processor.tokenizer))
        enc = PromptEncoder(processor, cfg.video_fps, cfg.max_frames)

        def run(prompts):
            encs = [enc(p, key="train") for p in prompts]
            t0 = time.perf_counter()
            rolls = gen(model, encs, cfg.num_generations)
            return time.perf_counter() - t0, sum(sum(r.loss_mask) for r in rolls)
    else:
        from transformers import GenerationConfig

        tok = processor.tokenizer
        eos = _eos(model, tok) + [tok.convert_tokens_to_ids("</answer>")]
        gc = GenerationConfig(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                              max_new_tokens=cfg.thinking_budget + cfg.answer_budget, eos_token_id=eos,
                              pad_token_id=tok.pad_token_id)

        def run(prompts):
            batch = _raw_batch(processor, prompts, cfg.num_generations)
            t0 = time.perf_counter()
            with torch.no_grad():
                seq = model.generate(**batch, generation_config=gc)
            dt = time.perf_counter() - t0
            return dt, int(_until_eos(seq[:, batch["input_ids"].shape[1]:], eos).sum())

    model.eval()
    prompts = _rl_prompts(cfg, cfg.prompts_per_step, seed=1)
    run(prompts[:1])  # warm-up
    best = None
    for r in range(args.gen_reps):
        torch.manual_seed(r)
        dt, n = run(prompts)
        best = max(best or 0.0, n / dt)
    return {"rl_gen_tokens_per_s": best}


def gen_eval(args, *, product: bool) -> dict:
    """``studio eval``'s greedy scoring of held-out prompts vs raw batched ``model.generate``."""
    import torch

    from studio.config import ModelSpec
    from studio.engine.infer.models import load
    from studio.engine.workshop.evaluate import _messages, evaluate, stratified
    from studio.engine.workshop.task_files import load_task_rows

    tasks = REPO / "sample_data" / "workshop" / "rl-shapes" / "eval.jsonl"
    n, max_new, bs = (4, 16, 2) if args.quick else (48, 160, 8)
    model, processor = load(ModelSpec(name_or_path="toy-thinking", device="cpu"))
    rows = stratified(load_task_rows(tasks), n)
    best = None
    for r in range(args.gen_reps + 1):  # the first is a warm-up
        if product:
            t0 = time.perf_counter()
            evaluate("toy-thinking", tasks, n=n, mode="thinking", max_new_tokens=max_new, batch_size=bs,
                     loaded=(model, processor))
            dt = time.perf_counter() - t0
            res = {"eval_s": dt}
        else:
            from PIL import Image

            tok = processor.tokenizer
            dt = ntok = 0
            for i in range(0, len(rows), bs):
                chunk = rows[i:i + bs]
                texts = [processor.apply_chat_template(_messages(x["prompt"]), add_generation_prompt=True,
                                                       tokenize=False) for x in chunk]
                imgs = [Image.open(p).convert("RGB") for x in chunk for p in x["images"]]
                enc = processor(text=texts, images=imgs, return_tensors="pt", padding=True)
                t0 = time.perf_counter()
                with torch.no_grad():
                    seq = model.generate(**enc, max_new_tokens=max_new, do_sample=False, top_k=None, top_p=None,
                                         temperature=None, pad_token_id=tok.pad_token_id)
                dt += time.perf_counter() - t0
                ntok += int(_until_eos(seq[:, enc["input_ids"].shape[1]:], _eos(model, tok)).sum())
            res = {"eval_s": dt, "eval_tokens": ntok}
        if r and (best is None or res["eval_s"] < best["eval_s"]):
            best = res
    return best


# --------------------------------------------------------------------------- parent
def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = Path(args.data) if args.data else None
    fn = {"sft-studio": lambda: child_sft_studio(args, args.case, data, out),
          "sft-hand": lambda: child_sft_hand(args, args.case, data, out),
          "rl-studio": lambda: child_rl_studio(args, out), "rl-raw": lambda: child_rl_raw(args, out)}[args.child]
    res = fn()
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(res))


def _run_side(args, side: str, case: str, data: Path | None, tmp: Path, k: int) -> dict:
    out = tmp / f"{case}-{side}-{k}"
    out.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--child", side, "--case", case, "--out", str(out / "run"),
           "--threads", str(args.threads), "--steps", str(args.steps), "--rl-steps", str(args.rl_steps),
           "--gen-reps", str(args.gen_reps)] + (["--quick"] if args.quick else []) + \
          (["--data", str(data)] if data else [])
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
        sys.exit(f"{case} {side} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return json.loads(line[-1][7:])


def _ratio_line(name: str, vals: list[float], goal: str) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return f"{name}: n/a"
    return (f"{name} = {statistics.median(vals):.3f} (min {min(vals):.3f}, max {max(vals):.3f}, "
            f"{len(vals)} pair{'s' if len(vals) > 1 else ''}; {goal})")


def report(args, res: dict[str, dict[str, list[dict]]]) -> None:
    """Print each side's numbers and the paired ratios (median, min, max over the repeats)."""
    print(f"\ntorch threads {args.threads}; steps timed after {WARM} warm-up steps; "
          f"each side in a fresh process, {args.repeat} repeat(s) in alternation")
    for case, sides in res.items():
        for side, runs in sides.items():
            for r in runs:
                print(f"  {case:8s} {side:6s} " + " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                    if k not in ("phases", "batches")))
    print("\nratios (product ÷ hand-written loop, paired by repeat):")
    for case in ("sft-full", "sft-lora"):
        if case not in res:
            continue
        pairs = list(zip(res[case]["studio"], res[case]["hand"]))
        same = all(a["batches"] == b["batches"] and a["batches"] for a, b in pairs)
        print(f"{case}: batches identical on both sides (first 3 checksums): {'yes' if same else 'NO'}")
        print(_ratio_line(f"{case} steps/s ratio studio/hand", [a["steps_per_s"] / b["steps_per_s"]
                                                                for a, b in pairs], "goal >= 0.9"))
        print(_ratio_line(f"{case} CPU-per-step ratio hand/studio", [b["cpu_s_per_step"] / a["cpu_s_per_step"]
                                                                     for a, b in pairs], "load-robust view"))
        print(_ratio_line(f"{case} peak RSS ratio studio/hand", [a["peak_rss_mb"] / b["peak_rss_mb"]
                                                                 for a, b in pairs], "goal <= 1.1"))
        ph = [a.get("phases") for a, _ in pairs if a.get("phases")]
        if ph:
            print(f"{case} studio step split (median s): " + ", ".join(
                f"{k[5:]} {statistics.median(p.get(k, 0.0) for p in ph):.4f}" for k in sorted(ph[0])))
    if "rl" in res:
        pairs = list(zip(res["rl"]["studio"], res["rl"]["raw"]))
        print(_ratio_line("rl step overhead beyond generate+update", [a["step_s"] / (b["gen_s"] + b["update_s"]) - 1
                                                                      for a, b in pairs], "goal <= 0.15"))
        ph = [a.get("phases") for a, _ in pairs if a.get("phases")]
        if ph:
            step = statistics.median(p["time/step_s"] for p in ph)
            print(f"rl studio step {step:.3f} s: " + ", ".join(
                f"{k[5:-2]} {statistics.median(p.get(k, 0.0) for p in ph):.3f} s "
                f"({100 * statistics.median(p.get(k, 0.0) for p in ph) / step:.0f} %)"
                for k in sorted(ph[0]) if k != "time/step_s"))
        raw_gen = statistics.median(b["gen_s"] for _, b in pairs)
        raw_upd = statistics.median(b["update_s"] for _, b in pairs)
        print(f"rl raw step: generate {raw_gen:.3f} s + forward/backward/AdamW {raw_upd:.3f} s")
        print(_ratio_line("rl generation tokens/s studio/raw", [a["rl_gen_tokens_per_s"] / b["rl_gen_tokens_per_s"]
                                                                for a, b in pairs], "goal >= 0.9"))
        print(_ratio_line("eval generation tokens/s studio/raw", [b["eval_s"] / a["eval_s"] for a, b in pairs],
                          "goal >= 0.9"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a few steps: a smoke test")
    ap.add_argument("--cases", default=None, help=f"comma list of {', '.join(CASES)} (default all; quick: sft-full,rl)")
    ap.add_argument("--steps", type=int, default=None, help="SFT steps per side (default 60; quick 4)")
    ap.add_argument("--rl-steps", type=int, default=None, help="GRPO steps per side (default 6; quick 2)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per side, alternating (default 3; quick 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    ap.add_argument("--scenes", type=int, default=None, help="scenes of SFT data generated (default 600; quick 16)")
    ap.add_argument("--gen-reps", type=int, default=None, help="generation timings per side (best kept; default 2)")
    ap.add_argument("--keep", default=None, help="keep the run folders under this folder")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    q = args.quick
    args.steps = args.steps or (4 if q else 60)
    args.rl_steps = args.rl_steps or (2 if q else 6)
    args.repeat = args.repeat or (1 if q else 3)
    args.scenes = args.scenes or (16 if q else 600)
    args.gen_reps = args.gen_reps or (1 if q else 2)
    args.cases = args.cases or ("sft-full,rl" if q else ",".join(CASES))
    if args.child:
        child(args)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        sys.exit(f"unknown case(s) {bad}; choose from {', '.join(CASES)}")
    tmp_ctx = tempfile.TemporaryDirectory() if not args.keep else None
    tmp = Path(args.keep or tmp_ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    data = None
    if "sft-full" in cases:
        from studio.engine.workshop.workshop_data import write_thinking_sft

        t0 = time.perf_counter()
        write_thinking_sft(tmp / "data", scenes=args.scenes, seed=0, max_questions=4, eval_n=0)
        data = tmp / "data" / "sft.jsonl"
        print(f"generated {args.scenes} scenes of SFT data in {time.perf_counter() - t0:.1f} s")
    res: dict[str, dict[str, list[dict]]] = {}
    for k in range(args.repeat):
        for case in cases:
            sides = ("studio", "raw") if case == "rl" else ("studio", "hand")
            for side in (sides if k % 2 == 0 else sides[::-1]):
                kind = "rl" if case == "rl" else "sft"
                r = _run_side(args, f"{kind}-{side}", case, data, tmp, k)
                res.setdefault(case, {}).setdefault(side, []).append(r)
                print(f"{case} {side} run {k + 1}/{args.repeat} done", flush=True)
    report(args, res)
    if tmp_ctx:
        tmp_ctx.cleanup()


if __name__ == "__main__":
    main()
