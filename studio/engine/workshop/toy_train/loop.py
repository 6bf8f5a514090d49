"""One training stage of the workshop model: load or build, optimise, probe, checkpoint, ship.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from studio.engine.workshop import tasks as T
from studio.engine.fileperm import share_weights
from studio.engine.workshop.toy_train.model import EVAL_SEED_OFFSET, STAGES, build_toy_model
from studio.engine.workshop.toy_train.sequences import (SceneStream, build_toy_processor, eval_keys, forward_loss,
                                                        make_batch)
from studio.engine.workshop.toy_train.vision import (cancel_background, freeze_vision_encoder, pretrain_vision,
                                                     scale_visual_tokens, sincos_position_embedding)
from studio.engine.workshop.toy_train.diagnostics import probe_record, progress_line, variance_shares


def save(model, processor, out: Path, meta: dict) -> None:
    """``save_pretrained`` (safetensors) + processor + ``studio_model.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    share_weights(out)
    (out / "studio_model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def ship(folder: str | Path) -> Path:
    """Re-save a finished checkpoint with bfloat16 weights (half the bytes: both toy models
    fit the repository's 25 MB budget). Loading on a CPU upcasts to float32 as usual."""
    import torch
    from transformers import AutoModelForImageTextToText

    folder = Path(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    share_weights(folder)
    return folder


def train(stage: str, out: str | Path, *, seed: int = 0, init: str | None = None, steps: int | None = None,
          lr: float | None = None, batch: int | None = None, threads: int = 2, save_minutes: float = 5.0,
          minutes: float | None = None, resume: bool = False, log_every: int = 20, eval_every: int = 200,
          command: str = "", freeze_vision: bool | None = None, min_gap: float = 0.0,
          visual_scale: float = 0.5, position_std: float = 1.0, freeze_merger: bool | None = None,
          vision_steps: int | None = None, vision_minutes: float | None = None,
          family_weights: dict[str, float] | None = None,
          family_levels: dict[str, tuple[int, ...]] | None = None, drop_questions: str | None = None,
          flip_rows: float = 0.0, yx_boxes: float = 0.0) -> Path:
    """Train one stage and save it into ``out``.

    Args:
        stage: ``"base"`` (from scratch, captions + Q/A text) or ``"thinking"`` (SFT from
            ``init`` into the think/answer/box format).
        init: model folder to start from (required for ``thinking``).
        steps, lr, batch: override :data:`STAGES` defaults.
        family_weights: family → relative weight of the training scenes (default: the four
            :data:`~studio.engine.workshop.tasks.FAMILIES` alike; add ``grounding`` for boxes).
        family_levels: family → the levels it trains on (default every level).
        drop_questions: regular expression; matching questions are not trained.
        flip_rows: share of top/bottom box questions trained with the bottom-up row convention
            (:func:`~studio.engine.workshop.grounding.flipped_rows`; 0 = none).
        yx_boxes: share of box answers trained in the y-first order
            (:func:`~studio.engine.workshop.grounding.yx_box`; 0 = none).
        minutes: wall-clock budget. Progress (LR cosine, curriculum) is the larger of
            step/steps and elapsed/budget, and training ends at 100 %: on a slow or shared
            CPU the run still ends on time with a fully decayed LR (fewer steps). ``None``
            or 0: purely step-based, bit-reproducible on one machine.
        resume: continue from the checkpoint in ``out`` and the resume folder.
        freeze_vision: freeze the vision encoder except the merger (default per stage: on).
        freeze_merger: freeze the merger too (default per stage: on; see
            :func:`freeze_vision_encoder`).
        eval_every: every this many steps, log the held-out probe loss and the
            :func:`vision_diagnostic` (``img_gap``, ``feat_spread``).
        visual_scale: for a model built from scratch, the std its visual tokens are scaled
            to (:func:`scale_visual_tokens`; 0 = keep the default init).
        position_std: for a model built from scratch, the std of the fixed sine-cosine
            vision position embedding (:func:`sincos_position_embedding`; 0 = keep the
            random one).
        vision_steps, vision_minutes: for a model built from scratch, steps and wall-clock cap
            of the dense vision pretraining that runs before the language model trains
            (:func:`pretrain_vision`; default per stage; 0 steps = keep the random tower).
        min_gap: if > 0, stop early (and say so) when the image gap is still below this many
            nats/token at the first diagnostic after 30 % of the run: the model ignores images.

    Returns:
        The output folder. Loss and probe metrics are appended to ``<out>/../.<name>.train.jsonl``
        style log in the resume folder and printed.

    Raises:
        InputError: unknown stage, or ``thinking`` without ``--init``.
    """
    import torch

    from studio.engine.infer.tiny import cache_root
    from studio.errors import InputError

    if stage not in STAGES:
        raise InputError(f"Unknown stage {stage!r}; use base or thinking.")
    if stage == "thinking" and not init and not resume:
        raise InputError("The thinking stage starts from a base model: pass --init studio/assets/toy-base.")
    d = STAGES[stage]
    steps, lr, batch = steps or d.steps, lr or d.lr, batch or d.batch
    minutes = d.minutes if minutes is None else minutes
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out)
    work = cache_root() / "toy-train" / f"{stage}-{out.resolve().name}"
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "train.jsonl"

    model, processor, vision_metrics = _load_or_build(
        stage, d, out, seed=seed, init=init, resume=resume, minutes=minutes, visual_scale=visual_scale,
        position_std=position_std, vision_steps=vision_steps, vision_minutes=vision_minutes)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    freeze_vision = d.freeze_vision if freeze_vision is None else freeze_vision
    freeze_merger = d.freeze_merger if freeze_merger is None else freeze_merger
    frozen = freeze_vision_encoder(model, merger=freeze_merger and freeze_vision) if freeze_vision else 0
    shares = variance_shares(model, processor)
    print(f"[{stage}] visual-token variance shares: {shares}", flush=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    start, prior_s = 0, 0.0
    if resume and (work / "resume.pt").is_file():
        state = torch.load(work / "resume.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        start, prior_s = int(state["step"]), float(state.get("elapsed_s", 0.0))
    elif not resume and log_path.exists():
        log_path.unlink()
    clock = _Schedule(steps, lr, d.warmup, minutes, prior_s)

    stream = SceneStream(seed, batch, eval_keys(seed, grounding="grounding" in (family_weights or ())),
                         family_weights, family_levels, drop_questions, flip_rows, yx_boxes)
    probe_rng = random.Random(f"probe/{seed}")
    probe_scenes = T.generate_scenes(48, seed + EVAL_SEED_OFFSET, stream.families)
    probe = make_batch(processor, probe_scenes, stage, d.max_questions, probe_rng)
    diag_batch = make_batch(processor, probe_scenes[:16], stage, d.max_questions, random.Random(f"diag/{seed}"))
    meta = {"kind": "workshop-toy", "stage": stage, "seed": seed, "command": command,
            "init": init, "families": family_weights, "family_levels": family_levels, "drop_questions": drop_questions,
            "flip_rows": flip_rows, "yx_boxes": yx_boxes, "params": n_params, "steps": steps, "lr": lr, "batch": batch,
            "minutes_budget": minutes, "frozen_vision_params": frozen,
            "position_std": position_std if not init else None, "frozen_merger": bool(freeze_merger),
            "visual_scale": visual_scale if not init else None, "variance_shares_start": shares,
            "vision_pretraining": vision_metrics}
    print(f"[{stage}] {n_params / 1e6:.2f} M parameters; steps {start}..{steps}, batch {batch}, lr {lr}",
          flush=True)
    t0 = last_save = clock.t0 = time.time()
    ema = None
    done = start
    with log_path.open("a", encoding="utf-8") as log:
        for step in range(start, steps):
            prog = clock.progress(step)
            if prog >= 1.0:
                print(f"[{stage}] time budget of {minutes} min reached after {step} steps", flush=True)
                break
            rng = random.Random(f"batch/{seed}/{step}")
            b = make_batch(processor, stream.scenes(step, prog), stage, d.max_questions, rng)
            loss, acc = _optimizer_step(model, opt, b, clock.lr_at(step, prog))
            done = step + 1
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            rec = {"step": step + 1, "loss": round(loss.item(), 4), "answer_acc": round(acc, 4),
                   "lr": clock.lr_at(step, prog), "progress": round(prog, 4),
                   "elapsed_s": round(prior_s + time.time() - t0, 1)}
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                rec.update(probe_record(model, probe, diag_batch, [sc.family for sc in probe_scenes]))
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if (step + 1) % log_every == 0 or "val_loss" in rec:
                print(progress_line(stage, steps, ema, acc, rec), flush=True)
                if min_gap > 0 and "img_gap" in rec and prog >= 0.3 and rec["img_gap"] < min_gap:
                    print(f"[{stage}] stopping: image gap {rec['img_gap']:.3f} < {min_gap} after "
                          f"{prog:.0%} of the run (the answers ignore the image)", flush=True)
                    break
            if time.time() - last_save > save_minutes * 60:
                _checkpoint(model, processor, opt, out, work, dict(meta, step=step + 1, finished=False),
                            elapsed_s=prior_s + time.time() - t0)
                last_save = time.time()
    model.eval()
    save(model, processor, out, dict(meta, step=done, finished=True,
                                     minutes=round((prior_s + time.time() - t0) / 60, 1)))
    ship(out)
    print(f"[{stage}] saved {out} (bfloat16 weights) after {(time.time() - t0) / 60:.1f} min", flush=True)
    return out


class _Schedule:
    """Progress and learning rate of a run: progress is the larger of step/steps and (when a
    budget is set) elapsed/budget, so a slow shared CPU still ends with a decayed LR."""

    def __init__(self, steps: int, lr: float, warmup: int, minutes: float, prior_s: float):
        self.steps, self.lr, self.warmup, self.minutes, self.prior_s = steps, lr, warmup, minutes, prior_s
        self.t0 = time.time()  # set again when the loop starts

    def progress(self, k: int) -> float:
        """Fraction of the run done: by steps, or by wall clock when ``minutes`` is set
        (whichever is further), so a slow shared CPU still ends with a decayed LR."""
        p = k / self.steps
        if self.minutes:
            p = max(p, (self.prior_s + time.time() - self.t0) / (self.minutes * 60))
        return min(p, 1.0)

    def lr_at(self, k: int, p: float) -> float:
        if k < self.warmup:
            return self.lr * (k + 1) / self.warmup
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def _load_or_build(stage: str, d, out: Path, *, seed: int, init: str | None, resume: bool, minutes: float,
                   visual_scale: float, position_std: float, vision_steps: int | None,
                   vision_minutes: float | None):
    """``(model, processor, vision_metrics)``: the checkpoint in ``out`` (resume), the ``init``
    folder, or a new model whose vision tower is pretrained first (``vision_metrics`` then)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    vision_metrics = None
    if resume and (out / "model.safetensors").is_file():
        processor = AutoProcessor.from_pretrained(out)
        model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    elif init:
        processor = AutoProcessor.from_pretrained(init)
        model = AutoModelForImageTextToText.from_pretrained(init, dtype=torch.float32)
    else:
        processor = build_toy_processor()
        model = build_toy_model(processor.tokenizer, seed=seed)
        if position_std:
            sincos_position_embedding(model, position_std)
        vision_steps = d.vision_steps if vision_steps is None else vision_steps
        if vision_minutes is None:  # --minutes 0 (step-based, reproducible) applies to both phases
            vision_minutes = d.vision_minutes if minutes else 0.0
        if vision_steps:
            cancel_background(model, processor)
            vision_metrics = pretrain_vision(model, processor, steps=vision_steps, minutes=vision_minutes,
                                             seed=seed, skip=eval_keys(seed))
        if visual_scale:
            print(f"[{stage}] visual tokens scaled ×{scale_visual_tokens(model, processor, visual_scale, seed):.1f} "
                  f"to std {visual_scale}", flush=True)
    return model, processor, vision_metrics


def _optimizer_step(model, opt, batch: dict, lr: float):
    """One AdamW step on ``batch`` at ``lr`` (gradient norm clipped at 1); ``(loss, answer_acc)``."""
    import torch

    for g in opt.param_groups:
        g["lr"] = lr
    loss, acc = forward_loss(model, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss, acc


def _checkpoint(model, processor, opt, out: Path, work: Path, meta: dict, *, elapsed_s: float) -> None:
    """Save the weights into ``out`` and the optimizer state into the resume folder ``work``."""
    import torch

    model.eval()
    save(model, processor, out, meta)
    torch.save({"optimizer": opt.state_dict(), "step": meta["step"], "elapsed_s": elapsed_s}, work / "resume.pt")
    model.train()
