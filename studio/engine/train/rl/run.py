"""One RL run: the run context, offline grading and the format gate, building the trainer, training.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Callable, Sequence

from studio.engine.fileperm import share_weights
from studio.engine.train import distributed
from studio.engine.train.distributed import main_only
from studio.engine.train.curriculum import group_key
from studio.engine.train.phase import (PhaseProgress, StoppedBeforeTraining, mark_stopped_before_training,
                                      stop_before_training)
from studio.engine.train.runs import checkpoint_step
from studio.engine.train.rl.config import (CURRICULUM_FILE, FORMAT_GATE_FILE, RL_STATE_FILE, ROLLOUTS_FILE,
                                          RLRunConfig, check_trl_version)
from studio.engine.train.rl.prompts import PromptEncoder, RLPrompt, check_data
from studio.engine.train.rl.rollouts import PromptDrawer, RolloutGenerator, Scorer, trl_reward
from studio.engine.train.rl.trainer import _make_trainer_class
from studio.errors import ConfigError, InputError, StudioError


# --------------------------------------------------------------------------- run context


class _RunContext:
    """What the trainer overrides need: prompts, encoder, generator, scorer, curriculum."""

    def __init__(self, cfg: RLRunConfig, run_dir: Path, train: list[RLPrompt], evals: list[RLPrompt],
                 processor, scorer: Scorer, state, eos_ids: Sequence[int], logger: Callable[[str], None]):
        self.cfg, self.run_dir = cfg, run_dir
        self.train, self.evals = train, evals
        self.encoder = PromptEncoder(processor, cfg.video_fps, cfg.max_frames)
        self.generator = RolloutGenerator(processor, thinking_budget=cfg.thinking_budget,
                                          answer_budget=cfg.answer_budget, temperature=cfg.temperature,
                                          top_p=cfg.top_p, eos_ids=eos_ids)
        self.scorer = scorer
        self.state = state
        self.drawer = PromptDrawer(state, len(train))
        self.log = logger
        self._rollouts_path = run_dir / ROLLOUTS_FILE
        self.evaluated: set[int] = set()  # steps whose held-out accuracy metrics.jsonl holds
        self.is_main = True  # the process that writes the run folder (the trainer sets it)

    def resumed_at(self, step: int) -> None:
        """Training restarts at checkpoint ``step``: mark ``rollouts.jsonl`` so readers drop
        the rows of the lost steps past it (as ``metrics.jsonl``'s resume line does), and
        remember which held-out evaluations up to ``step`` are already recorded."""
        from studio.engine.train.metrics import RESUME_KIND, MetricsWriter, read_metrics

        if self.is_main:  # the writer first ends a line the crash tore, so the mark stays whole
            with MetricsWriter(self._rollouts_path) as w:
                w.log_dict(step, {}, kind=RESUME_KIND)
        self.evaluated = {int(r["step"]) for r in read_metrics(self.run_dir, kind="eval")
                          if "eval/accuracy" in r and r["step"] <= step}

    def record_eval(self, step: int, model, rollouts_total: int, note: str = "") -> None:
        """Score ``model`` (the model after ``step`` updates) on the held-out prompts and
        record it at ``step`` in ``metrics.jsonl`` (kind ``eval``) and ``train.log``; once
        per step (the final evaluation and a resume may ask again)."""
        if not self.evals or step in self.evaluated:
            return
        from studio.engine.train.metrics import MetricsWriter

        acc = self.evaluate(model)  # every process scores its share of the prompts
        self.evaluated.add(step)
        if not self.is_main:
            return
        with MetricsWriter(self.run_dir) as w:
            w.log(step, kind="eval", **{"eval/accuracy": acc, "eval/rollouts": float(rollouts_total)})
        self.log(f"step {step}: held-out accuracy {acc:.3f}{note}")

    def evaluate(self, model) -> float:
        """Held-out accuracy: one greedy answer per eval prompt (forced answering on). With
        several processes each answers a round-robin share and the counts are summed."""
        from studio.engine.train.distributed import shard, sum_all

        if not self.evals:
            return float("nan")
        mine = shard(self.evals)
        was_training = model.training
        model.eval()
        correct = 0
        try:
            if mine:
                encs = [self.encoder(p, key="eval") for p in mine]
                rolls = self.generator(model, encs, 1, greedy=True)
                rewards, _ = self.scorer([r.text for r in rolls], mine)
                correct = sum(r >= self.state.config.correct_threshold for r in rewards)
        finally:
            model.train(was_training)
        return sum_all([correct])[0] / len(self.evals)

    def write_rollouts(self, step: int, items) -> None:
        """Append up to ``rollouts_logged_per_step`` of the step's rollouts (the whole pool's,
        every process's) to ``rollouts.jsonl``; the main process only."""
        n = self.cfg.rollouts_logged_per_step
        if n <= 0 or not self.is_main:
            return
        stride = max(1, len(items) // n)
        with self._rollouts_path.open("a", encoding="utf-8") as f:
            for p, r, rew in items[::stride][:n]:
                f.write(json.dumps({
                    "step": step, "prompt": p.text, "image": (p.images or p.videos or [None])[0],
                    "completion": r.text, "reward": rew, "tier": self.state.tier_of(p.idx),
                    "forced": r.forced, "truncated": r.truncated, "answer": p.answer,
                }, ensure_ascii=False) + "\n")

    def save_curriculum(self, path: Path) -> None:
        """Write the curriculum state as JSON (the main process; every process holds the same)."""
        if self.is_main:
            self.state.save(path)


# --------------------------------------------------------------------------- offline grading & gate




def offline_grade(ctx: _RunContext, model, k: int, stop_flag=None) -> tuple[dict[int, float], float]:
    """k samples per train prompt → (pass rate per prompt idx, format-correct rate).

    RLCS.md step 2. Also gives the format gate its measurement for free. Progress (prompts
    graded, time left) goes to ``progress.json`` and the log (:class:`~studio.engine.train.phase.PhaseProgress`). With several
    processes each grades a round-robin share of the prompts and the results are gathered,
    so every process starts from the same pass-rate table.

    Raises:
        StoppedBeforeTraining: ``stop_flag`` (anything truthy once a stop was asked, e.g. a
            :class:`~studio.engine.train.callbacks.StopFlag`) was set in any process; checked between
            chunks of ``64 // k`` prompts, so the job panel's Stop ends grading within seconds.
    """
    from studio.engine.train.distributed import all_gather_objects, any_rank, shard, world_size

    G = max(1, k)
    rates: dict[int, float] = {}
    fmt_ok = n = 0
    chunk = max(1, 64 // G)
    mine = shard(ctx.train)
    per_process = math.ceil(len(ctx.train) / world_size())  # the same number of chunks everywhere
    progress = PhaseProgress(ctx.run_dir, "grading", "offline grading", len(ctx.train), "prompts",
                             log_fn=ctx.log, main=ctx.is_main, write_every_s=0)  # a chunk takes seconds
    for s in range(0, per_process, chunk):
        if any_rank(bool(stop_flag)):
            done = min(len(ctx.train), s * world_size())
            raise StoppedBeforeTraining(f"during offline grading ({done} of {len(ctx.train)} prompts graded)")
        prompts = mine[s:s + chunk]
        if not prompts:
            continue
        encs = [ctx.encoder(p, key="train") for p in prompts]
        rolls = ctx.generator(model, encs, G)
        rows = [p for p in prompts for _ in range(G)]
        rewards, fmt = ctx.scorer([r.text for r in rolls], rows)
        for j, p in enumerate(prompts):
            rates[p.idx] = sum(x >= ctx.state.config.correct_threshold for x in rewards[j * G:(j + 1) * G]) / G
        fmt_ok += sum(fmt)
        n += len(fmt)
        progress.update(len(prompts) * world_size())  # every process grades a chunk at a time
    parts = all_gather_objects((rates, fmt_ok, n))
    progress.finish()
    all_rates = {i: r for part, _, _ in parts for i, r in part.items()}
    return all_rates, sum(p[1] for p in parts) / max(1, sum(p[2] for p in parts))


class FormatGateError(StudioError):
    """The policy writes the think/answer format too rarely for RL to learn (RLCS.md step 1)."""


def format_gate(ctx: _RunContext, model, n_prompts: int, rate: float | None = None) -> dict:
    """Measure the format-correct rate (RLCS.md step 1); below the threshold refuse (the
    default) or warn (``format_gate: warn``).

    Returns ``{"rate", "threshold", "prompts", "ok", "warning"}`` and writes it to
    ``<run>/format_gate.json``.

    Raises:
        FormatGateError: below the threshold with ``format_gate: refuse`` — minutes of
            rollouts that all score 0 would update nothing.
    """
    if rate is None:
        from studio.engine.train.distributed import shard, sum_all

        rng = random.Random(ctx.cfg.seed + 7)  # the same sample in every process; each does its share
        sample = rng.sample(ctx.train, min(n_prompts, len(ctx.train)))
        mine = shard(sample)
        fmt = []
        if mine:
            rolls = ctx.generator(model, [ctx.encoder(p, key="train") for p in mine], 1)
            _, fmt = ctx.scorer([r.text for r in rolls], mine)
        ok_n, n = sum_all([sum(fmt), len(fmt)])
        rate = ok_n / max(1.0, n)
        n = int(n)
    else:
        n = len(ctx.train)
    ok = rate >= ctx.cfg.format_gate_threshold
    warning = None if ok else (
        f"FORMAT GATE: only {rate:.0%} of sampled completions follow the {ctx.scorer.family.format_hint} "
        f"format (threshold {ctx.cfg.format_gate_threshold:.0%}). RL rewards format failures with 0, so this "
        f"model will barely learn: teach the format first in the SFT tab (`studio sft`), then start RL "
        f"from its result (`studio rl --adapter <sft run>/adapter`, or `--model <sft run>/model` after a "
        f"full fine-tune; in the RL tab: \"Start from adapter\")."
    )
    info = {"rate": rate, "threshold": ctx.cfg.format_gate_threshold, "prompts": n, "ok": ok, "warning": warning}
    if ctx.is_main:
        (ctx.run_dir / FORMAT_GATE_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    if warning and ctx.cfg.format_gate == "refuse":
        raise FormatGateError(warning.replace("FORMAT GATE: ", "Format gate: ") +
                              " To go on anyway: `studio rl … --allow-low-format` (format_gate: warn).")
    ctx.log(warning or f"format gate: {rate:.0%} format-correct (ok)")
    return info


# --------------------------------------------------------------------------- building & running


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Newest complete ``checkpoint-N`` of a run (:func:`studio.engine.train.runs.find_last_checkpoint`)."""
    from studio.engine.train.runs import find_last_checkpoint

    return find_last_checkpoint(run_dir)


def _stdout_is(path: Path) -> bool:
    import os
    import sys

    try:
        a, b = os.fstat(sys.stdout.fileno()), os.stat(path)
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    except (OSError, ValueError, AttributeError):
        return False


def _file_logger(run_dir: Path) -> Callable[[str], None]:
    """Print a timestamped line and append it to ``train.log`` (once, even when the job
    wrapper already sends stdout there)."""
    path = run_dir / "train.log"

    @main_only  # one copy of each line, from the main process of a multi-process launch
    def write(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        if not _stdout_is(path):
            with path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

    return write


def _make_state(cfg: RLRunConfig, train: list[RLPrompt]):
    from studio.engine.train.curriculum import CurriculumState

    return CurriculumState(len(train), cfg.curriculum)


def grpo_config(cfg: RLRunConfig, run_dir: Path, on_cpu: bool):
    """TRL's ``GRPOConfig`` for ``cfg``: the paper's objective, checkpoints under ``run_dir``."""
    import torch
    from trl import GRPOConfig

    args = GRPOConfig(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        steps_per_generation=cfg.steps_per_generation,
        num_iterations=cfg.num_iterations,
        num_generations=cfg.num_generations,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        max_grad_norm=cfg.max_grad_norm,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        loss_type=cfg.loss_type,
        scale_rewards="group",
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_completion_length=cfg.thinking_budget + cfg.answer_budget + 8,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=cfg.save_total_limit,
        report_to=[],
        seed=cfg.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ignore_data_skip=True,  # the curriculum state, not the data order, is what resume restores
        use_cpu=on_cpu,
        bf16=(not on_cpu) and torch.cuda.is_bf16_supported(),
        activation_checkpointing=False,
        use_vllm=cfg.use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        log_completions=False,
        disable_tqdm=True,
        ddp_timeout=distributed.timeout_s(),
    )
    return args


def build_trainer(cfg: RLRunConfig, run_dir: str | Path, *, model=None, processor=None,
                  reward_fn: Callable | None = None, resume: bool = False,
                  logger: Callable[[str], None] | None = None, stop_flag=None):
    """Load data and model, grade prompts, gate the format, and build the trainer.

    Args:
        cfg: validated run config.
        run_dir: the run folder (config, metrics, logs, checkpoints, adapter go here).
        model, processor: already loaded base model (tests); default: ``models.load(cfg.model)``.
        reward_fn: a registry-signature reward function used instead of ``cfg.rewards``
            (tests use one with variance on a random model).
        resume: continue from the newest checkpoint (curriculum restored, no grading).
        stop_flag: a :class:`studio.engine.train.callbacks.StopFlag`; once set, the trainer saves a
            checkpoint and stops at the next step end (graceful stop from the job panel).

    Returns:
        (trainer, checkpoint or None).

    Raises:
        ConfigError / DataError / ModelLoadError with the field or row to fix.
    """
    from datasets import Dataset
    from peft import LoraConfig
    check_trl_version()
    cfg.validate()
    if distributed.strategy() in distributed.SHARDED:
        raise ConfigError(distributed.RL_NEEDS_WHOLE_MODEL)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    say = main_only(logger) if logger else _file_logger(run_dir)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise InputError(f"Run {run_dir} has no checkpoint to resume from; start it again instead.")

    train, evals = check_data(cfg, references=reward_fn is None)
    B = cfg.prompts_per_step

    if model is None or processor is None:
        from studio.engine.infer.models import load, pick_device

        distributed.init(on_cpu=pick_device(cfg.model.device) == "cpu")  # before loading: each process its GPU
        model, processor = load(cfg.model)
    on_cpu = next(model.parameters()).device.type == "cpu"
    if ckpt is None:
        stop_before_training(stop_flag, "while loading the model")
    distributed.init(on_cpu=on_cpu)  # grading below gathers across processes
    from studio.engine.infer import family

    scorer = Scorer(cfg.rewards, reward_fn, family.of(processor, model))
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [processor.tokenizer.eos_token_id])

    state = _make_state(cfg, train)
    ctx = _RunContext(cfg, run_dir, train, evals, processor, scorer, state, eos, say)
    ctx.is_main = distributed.is_main_process()
    n_proc = distributed.world_size()
    say(f"RL run: {len(train)} train / {len(evals)} eval prompts, reward {scorer.name}, curriculum "
        f"{cfg.curriculum.mode}, B={B * n_proc} prompts × G={cfg.num_generations}"
        + (f" ({B} per process × {n_proc} processes)" if n_proc > 1 else ""))

    if ckpt is not None:
        cur = ckpt / CURRICULUM_FILE
        if cur.is_file():
            ctx.state = state = type(state).load(cur, num_prompts=len(train))
            ctx.drawer.state = state
            say(f"resumed curriculum state from {cur}")
        else:
            say(f"warning: {ckpt} has no {CURRICULUM_FILE}; the curriculum restarts from scratch")
    else:
        model.eval()
        p0, fmt_rate = None, None
        cc = cfg.curriculum
        if cc.offline_grading and not cc.cold_start:
            t0 = time.perf_counter()
            p0, fmt_rate = offline_grade(ctx, model, cc.offline_samples, stop_flag)
            say(f"offline grading: {len(p0)} prompts × {cc.offline_samples} samples in "
                f"{time.perf_counter() - t0:.1f}s; mean pass rate {sum(p0.values()) / max(1, len(p0)):.2f}")
        format_gate(ctx, model, cfg.format_gate_prompts, rate=fmt_rate)
        labels = {p.idx: p.difficulty for p in train if p.difficulty is not None}
        state.init_offline(p0, labels)
        if cc.group_by:
            state.set_groups({p.idx: group_key(p.row, cc.group_by) for p in train})
        ctx.save_curriculum(run_dir / CURRICULUM_FILE)

    ds = Dataset.from_dict({"prompt": [[{"role": "user", "content": p.text}] for p in train],
                            "idx": [p.idx for p in train]})
    args = grpo_config(cfg, run_dir, on_cpu)
    peft_config = None
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        peft_config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.lora_target, task_type="CAUSAL_LM")
    from studio.engine.train.callbacks import MetricsCallback, StopFlagCallback

    callbacks = [MetricsCallback(run_dir, log_fn=say)]
    if stop_flag is not None:
        callbacks.append(StopFlagCallback(stop_flag))
    cls = _make_trainer_class()
    model.train()
    trainer = cls(model=model, reward_funcs=[trl_reward(scorer, processor.tokenizer)], args=args,
                  train_dataset=ds, processing_class=processor, peft_config=peft_config,
                  callbacks=callbacks, studio=ctx)
    if ckpt is not None and (ckpt / RL_STATE_FILE).is_file():
        trainer.rollouts_total = int(json.loads((ckpt / RL_STATE_FILE).read_text())["rollouts_total"])
    return trainer, ckpt


def train(cfg: RLRunConfig, run_dir: str | Path, *, resume: bool = False, model=None, processor=None,
          reward_fn: Callable | None = None, stop_flag=None) -> dict:
    """Run (or resume) one RL run in ``run_dir``; returns a summary dict.

    The adapter is saved to ``<run>/adapter`` at the end (also after a stop or a
    too-easy stop); ``curriculum.json`` sits in every checkpoint and in the run folder.
    A stop during offline grading ends the run before step 1: ``adapter`` is None and
    ``stop_reason`` says so (for a resumed run stopped before its next step: that it keeps
    its checkpoint, :func:`~studio.engine.train.phase.stopped_message`).
    """
    run_dir = Path(run_dir)
    try:
        trainer, ckpt = build_trainer(cfg, run_dir, model=model, processor=processor, reward_fn=reward_fn,
                                      resume=resume, stop_flag=stop_flag)
        ctx: _RunContext = trainer.studio
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    except StoppedBeforeTraining as e:
        # a resumed run keeps its checkpoint and earlier training: say so, not "nothing was trained"
        last = latest_checkpoint(run_dir) if resume else None
        reason = e.resumed(checkpoint_step(last)) if last else str(e)
        summary = {"steps": checkpoint_step(last) if last else 0, "rollouts": 0, "seconds": 0.0,
                   "stop_reason": reason, "adapter": None}
        say = _file_logger(run_dir)
        say(f"done: {json.dumps(summary)}")
        say(reason)  # the last line: the job panel shows it beside "stopped"
        if distributed.is_main_process():
            mark_stopped_before_training(run_dir, reason)  # removes nothing from a run with a checkpoint
        return summary
    step = trainer.state.global_step
    if cfg.eval_every and step > 0:
        # in-loop evaluations run before a step's rollouts, so none sees the final model;
        # its score (the last point of the held-out curve) is measured here, at the final step
        ctx.record_eval(step, trainer.accelerator.unwrap_model(trainer.model), trainer.rollouts_total, " (final)")
    ctx.save_curriculum(run_dir / CURRICULUM_FILE)
    adapter = run_dir / "adapter"

    def save(state_dict):  # one copy of the result, by the main process
        trainer.model.save_pretrained(str(adapter), state_dict=state_dict)
        trainer.processing_class.save_pretrained(str(adapter))
        share_weights(run_dir, recursive=True)  # the adapter and every checkpoint

    distributed.save_on_main(trainer, save)
    summary = {
        "steps": trainer.state.global_step,
        "rollouts": trainer.rollouts_total,
        "seconds": round(time.perf_counter() - t0, 1),
        "stop_reason": trainer.stop_reason,
        "adapter": str(adapter),
    }
    ctx.log(f"done: {json.dumps(summary)}")
    return summary
