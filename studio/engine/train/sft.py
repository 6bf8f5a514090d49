"""LoRA / QLoRA SFT into GLM-4.1V's ``<think>…</think><answer>…</answer>`` format.

What happens in one run (``studio sft --config runs/<id>/config.yaml``, also what the SFT
tab starts as a child process):

1. the config is validated and saved as ``config.yaml`` in the run folder;
2. the data is loaded (:func:`studio.engine.train.data.load_rows`) and checked by the data
   doctor; the report goes to ``doctor.json`` / ``doctor.md``; rows with errors are skipped
   (``skip_error_rows``), rows too long for ``max_length`` get smaller images or are
   skipped (``oversize``) — never is an image span cut;
3. PEFT LoRA goes on the *language model's* linear layers only, chosen by a module-path
   regex (plain names like ``gate_proj``/``down_proj`` also exist in the vision tower, see
   FACTS.md "LoRA"); the vision tower stays frozen (option: LoRA on the merger too);
4. TRL's ``SFTTrainer`` trains with ``assistant_only_loss=True``: the processor carries
   the training template (``glm4v_train.jinja``, same bytes as the inference template plus
   ``{% generation %}`` markers) and :class:`studio.engine.train.data.Collator` builds batches
   with ``return_assistant_tokens_mask`` — the same mask the trained-token preview shows;
5. metrics stream to ``metrics.jsonl`` / ``progress.json`` (:mod:`studio.engine.train.metrics`),
   TensorBoard logs to ``tb/``; SIGINT/SIGTERM = finish the step, save a checkpoint, exit 0;
   a new start in the same folder resumes from the last complete checkpoint; the final
   adapter goes to ``adapter/``.

Precision: bf16 on GPUs that support it, else fp32 (fp16 is refused for GLM-4 backbones);
QLoRA (NF4, bitsandbytes) needs CUDA.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

from studio.config import ON_OFF_AUTO, ModelSpec, OnOffAuto, YamlConfig, check, parse_on_off
from studio.engine.train.data import POLICIES
from studio.engine.train.phase import (StoppedBeforeTraining, interruptible, mark_stopped_before_training,
                                      stop_before_training)
from studio.engine.train.runs import checkpoint_step
from studio.engine.fileperm import share_weights
from studio.engine.train.sft_data import ensure_data, read_and_check, resolve_data_path, split_rows  # noqa: F401
from studio.engine.train.full_model import lora_module_names, save_full_model, unfreeze_language_model  # noqa: F401
from studio.engine.train.sft_trainer import DiskFullError, trainer_class  # noqa: F401 - re-exported
from studio.errors import ConfigError, DataError, StoppedError

log = logging.getLogger(__name__)

#: Linear layers of one GLM-4.1V language-model block (attention and MLP).
LANGUAGE_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj")
#: Linear layers of the vision→language merger (trained only with ``train_merger``).
MERGER_LINEARS = ("proj", "gate_proj", "up_proj", "down_proj")
DOCTOR_JSON, DOCTOR_MD = "doctor.json", "doctor.md"


@dataclasses.dataclass
class LoraSpec(YamlConfig):
    """LoRA adapter settings (PEFT ``LoraConfig``).

    Attributes:
        rank: LoRA rank r (≥ 1). alpha: scaling numerator (update scale = alpha / rank).
        dropout: dropout on the LoRA input, in [0, 1).
        target_modules: short names of language-model linears to adapt (any of
            :data:`LANGUAGE_LINEARS`); matched by path so the vision tower is never hit.
        train_merger: also put LoRA on the vision→language merger.
        qlora: load the base in 4-bit NF4 (bitsandbytes) — CUDA only.
    """

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = dataclasses.field(default_factory=lambda: list(LANGUAGE_LINEARS))
    train_merger: bool = False
    qlora: bool = False

    def validate(self) -> None:
        check(self.rank >= 1, "lora.rank", f"must be at least 1 (got {self.rank}); 8–64 is usual.")
        check(self.rank <= 1024, "lora.rank", "must be at most 1024.")
        check(self.alpha > 0, "lora.alpha", "must be positive (often 2 × rank).")
        check(0 <= self.dropout < 1, "lora.dropout", "must be in [0, 1).")
        check(bool(self.target_modules), "lora.target_modules", "must name at least one layer.")
        bad = [t for t in self.target_modules if t not in LANGUAGE_LINEARS]
        check(not bad, "lora.target_modules",
              f"has unknown layer(s) {bad}; choose from {', '.join(LANGUAGE_LINEARS)}.")

    def target_regex(self) -> str:
        """Full-match regex over module paths: language-model layers (+ merger).

        >>> import re; r = LoraSpec(target_modules=["q_proj", "down_proj"]).target_regex()
        >>> bool(re.fullmatch(r, "model.language_model.layers.3.mlp.down_proj"))
        True
        >>> bool(re.fullmatch(r, "model.visual.blocks.0.mlp.down_proj"))
        False
        """
        names = "|".join(re.escape(t) for t in self.target_modules)
        rx = rf"(?:.*\.)?language_model\.layers\.\d+\.(?:self_attn|mlp)\.(?:{names})"
        if self.train_merger:
            rx += rf"|(?:.*\.)?visual\.merger\.(?:{'|'.join(MERGER_LINEARS)})"
        return rx


@dataclasses.dataclass
class SFTRunConfig(YamlConfig):
    """Everything one SFT run needs; saved as ``config.yaml`` in the run folder.

    Attributes:
        name: short run name (folder suffix).
        model: base model (:class:`~studio.config.ModelSpec`).
        data: dataset path (file, folder, ``save_to_disk`` folder, LLaMA-Factory's
            ``dataset_info.json`` or its folder, or hub name).
        dataset_info / dataset: a LLaMA-Factory ``dataset_info.json`` and the entry whose
            file, columns and role names to use (``data`` may then be empty).
        output_dir: the run folder; empty = the folder holding the config file.
        lora: :class:`LoraSpec`.
        learning_rate: AdamW peak learning rate. epochs: passes over the data (used
            when ``max_steps`` ≤ 0). max_steps: optimizer steps (> 0 overrides epochs).
        batch_size: rows per device step. grad_accum: steps accumulated per update.
        max_length: tokens per row after media expansion; longer rows are resized/skipped
            (see ``oversize``) so an image span is never cut.
        image_max_pixels / video_max_pixels: pixel budget of smart_resize (None: the
            processor's own); image_min_pixels likewise.
        fps, max_frames: video frame sampling.
        policy: loss policy (see :data:`studio.engine.train.data.POLICIES`).
        oversize: ``"resize"`` (shrink images, warn) or ``"skip"`` rows too long.
        skip_error_rows: train without rows the doctor marks as errors (else refuse).
        seed: seed for split, shuffling and LoRA init.
        eval_split: fraction of rows held out for eval loss (0 = none).
        eval_steps, save_steps, logging_steps, save_total_limit: Trainer cadence.
        lr_scheduler: ``linear`` / ``cosine`` / ``constant``. warmup_steps: linear warm-up.
        weight_decay: AdamW weight decay. gradient_checkpointing: ``auto`` (on for CUDA),
            ``on`` or ``off`` (YAML booleans and true/false are read as on/off).
        report_to: logging integrations (``tensorboard``; ``none`` for nothing).
        resume: continue from the run folder's last complete checkpoint if there is one.
        finetuning: ``lora`` (PEFT adapter → ``<run>/adapter/``) or ``full`` (every
            language-model weight trains, vision tower frozen, merger too unless
            ``lora.train_merger``; the whole model → ``<run>/model/``) — LLaMA-Factory's
            lora/full choice; full suits small models and users with memory to spare.
        trainable_layers: with ``full``, train only the last N decoder layers of the language
            model (plus its final norm and LM head); the embeddings and earlier layers stay
            frozen, so backward stops early (LLaMA-Factory's freeze tuning). 0: every layer.
        eval_data: held-out prompt JSONL (``studio tasks --eval-n`` writes one) scored by
            generation during training (:mod:`studio.engine.train.skill_eval`): format rate and
            accuracy, the curves that show the skill rather than the loss. Empty: off.
        adam_beta2: AdamW's second-moment decay (0.98 adapts faster in short runs).
        dataloader_workers: processes that build batches (decode images, render the chat
            template) while the model trains; 0 = in the training process.
        group_by_length: batches of rows of similar token length (transformers'
            ``train_sampling_strategy="group_by_length"``: mega-batches of 50 batches sorted by
            the doctor's token count), so less of each batch is padding; the order stays random
            between mega-batches.
        skill_eval_steps: score ``eval_data`` every this many steps (0: only at start and end).
        skill_eval_n: prompts of ``eval_data`` scored each time (stratified, same rows).
        tasks: when ``data`` does not exist yet, generate it first with ``studio tasks``
            (``kind`` and its arguments, e.g. ``{scenes: 12000, seed: 0, eval_n: 480}``; see
            :func:`studio.engine.workshop.workshop_data.write_recipe_data`) — how a recipe ships its data.
    """

    name: str = "sft"
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    data: str = ""
    dataset_info: str = ""
    dataset: str = ""
    output_dir: str = ""
    lora: LoraSpec = dataclasses.field(default_factory=LoraSpec)
    learning_rate: float = 2e-4
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 1
    grad_accum: int = 4
    max_length: int = 4096
    image_max_pixels: int | None = None
    image_min_pixels: int | None = None
    video_max_pixels: int | None = None
    fps: float = 2.0
    max_frames: int = 32
    policy: str = "last_thinking"
    oversize: str = "resize"
    skip_error_rows: bool = True
    seed: int = 42
    eval_split: float = 0.1
    eval_steps: int = 20
    save_steps: int = 50
    save_total_limit: int = 3
    logging_steps: int = 1
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    gradient_checkpointing: OnOffAuto = "auto"
    report_to: list[str] = dataclasses.field(default_factory=lambda: ["tensorboard"])
    resume: bool = True
    finetuning: str = "lora"
    trainable_layers: int = 0
    adam_beta2: float = 0.999
    dataloader_workers: int = 0
    group_by_length: bool = False
    eval_data: str = ""
    skill_eval_steps: int = 0
    skill_eval_n: int = 60
    tasks: dict | None = None

    def validate(self) -> None:
        super().validate()
        check(bool(self.data or self.dataset_info), "data", "must name a dataset file or folder.")
        check(self.finetuning in ("lora", "full"), "finetuning", "must be lora or full.")
        check(self.trainable_layers >= 0, "trainable_layers", "must be 0 (every layer) or a number of last layers.")
        check(not (self.trainable_layers and self.finetuning != "full"), "trainable_layers",
              "applies to finetuning: full only (LoRA already trains few weights); set it to 0 or use full.")
        check(not (self.finetuning == "full" and self.lora.qlora), "finetuning",
              "full fine-tuning trains float weights; turn lora.qlora off or use finetuning: lora.")
        check(self.skill_eval_steps >= 0, "skill_eval_steps", "must be 0 (start and end only) or more.")
        check(0.9 <= self.adam_beta2 < 1, "adam_beta2", "must be in [0.9, 1), e.g. 0.999 or 0.98.")
        check(0 <= self.dataloader_workers <= 16, "dataloader_workers", "must be between 0 and 16.")
        check(1 <= self.skill_eval_n <= 10000, "skill_eval_n", "must be between 1 and 10000.")
        check(self.tasks is None or isinstance(self.tasks, dict), "tasks",
              "must be a mapping like {n: 4000, seed: 7, eval_n: 60}.")
        check(0 < self.learning_rate < 1, "learning_rate", f"must be in (0, 1), e.g. 2e-4 (got {self.learning_rate}).")
        check(math.isfinite(self.epochs) and self.epochs > 0 or self.max_steps > 0, "epochs",
              "must be positive (or set max_steps).")
        check(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "must be -1 (use epochs) or at least 1.")
        check(self.batch_size >= 1, "batch_size", "must be at least 1.")
        check(self.grad_accum >= 1, "grad_accum", "must be at least 1.")
        check(64 <= self.max_length <= 262144, "max_length", "must be between 64 and 262144 tokens.")
        for f in ("image_max_pixels", "image_min_pixels", "video_max_pixels"):
            v = getattr(self, f)
            check(v is None or v >= 28 * 28, f, "must be at least 784 (28 × 28 pixels) or empty.")
        if self.image_max_pixels and self.image_min_pixels:
            check(self.image_min_pixels <= self.image_max_pixels, "image_min_pixels", "must not exceed image_max_pixels.")
        check(0 < self.fps <= 30, "fps", "must be in (0, 30].")
        check(2 <= self.max_frames <= 600, "max_frames", "must be between 2 and 600.")
        check(self.policy in POLICIES, "policy", f"must be one of {', '.join(POLICIES)}.")
        check(self.oversize in ("resize", "skip"), "oversize", "must be resize or skip.")
        check(0 <= self.eval_split < 1, "eval_split", "must be in [0, 1), e.g. 0.1.")
        for f in ("eval_steps", "save_steps", "logging_steps", "save_total_limit"):
            check(getattr(self, f) >= 1, f, "must be at least 1.")
        check(self.lr_scheduler in ("linear", "cosine", "constant", "constant_with_warmup"), "lr_scheduler",
              "must be linear, cosine, constant or constant_with_warmup.")
        check(self.warmup_steps >= 0, "warmup_steps", "must be 0 or more.")
        check(0 <= self.weight_decay < 1, "weight_decay", "must be in [0, 1).")
        if self.gradient_checkpointing not in ON_OFF_AUTO:  # set in code, not read from YAML
            self.gradient_checkpointing = parse_on_off(self.gradient_checkpointing, "gradient_checkpointing")
        check(bool(re.fullmatch(r"[\w.-]+", self.name or "")), "name", "may hold letters, digits, '.', '_' and '-'.")
        from studio.engine.train.reporting import REPORT_TO

        for r in self.report_to:
            check(r in (*REPORT_TO, "none"), "report_to", f"{r!r} is unknown; choose from {', '.join([*REPORT_TO, 'none'])}.")


def check_data(cfg: SFTRunConfig, stop=None, progress=None):
    """Load the run's data the way training will (:func:`studio.engine.train.data.load_rows`):
    what must hold before a run folder is made (the CLI and the SFT tab call it first).

    ``stop`` (anything with ``is_set()``) ends a recipe's first-use data generation and the
    reading of the rows within a row (:class:`~studio.errors.StoppedError`);
    ``progress(phase, done, total)`` hears of both, ``phase`` being ``"generating"``
    (scenes) or ``"checking"`` (rows), so a status line can say how far it is.

    Returns: the loaded :class:`~studio.engine.train.data.RowList`.

    Raises:
        DataError: missing or empty file, invalid JSON, unknown columns, media paths
            outside the data folder (the message names the row); no row left to train
            (:func:`studio.engine.train.data.refuse_untrainable`, with the model's processor
            when its files are here: its family's tag format and ``max_length`` count).
        StoppedError: ``stop`` was set (generation's partial data removed).
    """
    from studio.engine.train import data as D

    # a recipe's data is generated here on first use
    def generating(done: int, total: int) -> None:
        if progress is not None:
            progress("generating", done, total)

    def checking(done: int, total: int) -> None:
        if stop is not None and stop.is_set():
            e = StoppedError(f"Stopped while checking the data ({done} of {total} rows); no run folder was made.")
            e.phase = "checking"  # type: ignore[attr-defined] - not the generation: no data was deleted
            raise e
        if progress is not None:
            progress("checking", done, total)

    rows = D.load_rows(ensure_data(cfg, stop=stop, progress=generating), dataset_info=cfg.dataset_info or None,
                       dataset=cfg.dataset or None, progress=checking)
    if cfg.skip_error_rows:  # else training refuses any error row itself, after the full doctor report
        from studio.engine.infer.models import load_processor

        proc = load_processor(cfg.model.name_or_path)  # the model-dependent checks (tags, length) too
        if proc is not None:
            _apply_budgets(proc, cfg)
        D.refuse_untrainable(rows, Path(str(cfg.data)).name, fps=cfg.fps, max_frames=cfg.max_frames,
                             processor=proc, max_length=cfg.max_length, policy=cfg.policy, oversize=cfg.oversize)
    return rows


def _dataset(rows: list):
    """Rows → ``datasets.Dataset`` with the columns TRL inspects (messages, images) + ``row`` and
    ``length`` (the doctor's token count, ``row.meta["tokens"]``; 0 when unknown)."""
    from datasets import Dataset

    recs = []
    for r in rows:
        msgs = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                 "".join(i.get("text", "") for i in m["content"])} for m in r.messages]
        recs.append({"messages": msgs, "images": list(r.images), "row": r.to_json(),
                     "length": int(r.meta.get("tokens") or 0)})
    return Dataset.from_list(recs)


def _apply_budgets(processor, cfg: SFTRunConfig) -> None:
    ip = processor.image_processor
    if cfg.image_max_pixels or cfg.image_min_pixels:
        ip.size = {"shortest_edge": cfg.image_min_pixels or ip.size["shortest_edge"],
                   "longest_edge": cfg.image_max_pixels or ip.size["longest_edge"]}
    if cfg.video_max_pixels:
        vp = processor.video_processor
        vp.size = {"shortest_edge": vp.size["shortest_edge"], "longest_edge": cfg.video_max_pixels}


def run_dir_for(cfg: SFTRunConfig, config_path: str | os.PathLike | None = None) -> Path:
    """The run folder: ``cfg.output_dir``, else the config file's folder."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    if config_path:
        return Path(config_path).resolve().parent
    raise ConfigError("`output_dir` is empty; set it or pass --config inside a run folder.")


def doctor_files(run_dir: Path, report) -> None:
    """Write ``doctor.json`` and ``doctor.md`` into the run folder."""
    (run_dir / DOCTOR_JSON).write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
    (run_dir / DOCTOR_MD).write_text(report.to_markdown() + "\n", encoding="utf-8")


def build_trainer(cfg: SFTRunConfig, run_dir: Path, *, stop_flag=None, callbacks: Sequence[Any] = (),
                  model_and_processor=None, log_fn=print):
    """Load model + data and build the trainer (no training yet).

    Returns: (trainer, info dict with ``doctor`` summary, ``rows``, ``train_rows``,
    ``eval_rows``, ``notes``).

    Raises:
        ConfigError: QLoRA without CUDA, bad settings. DataError: unusable data.
        ModelLoadError: the base model cannot be loaded.
    """
    import torch
    from peft import LoraConfig
    from trl import SFTConfig

    from studio.engine.train import data as D, distributed
    from studio.engine.train.callbacks import sft_callbacks
    from studio.engine.infer.models import load, pick_device, pick_dtype

    cfg.validate()
    log_fn = distributed.main_only(log_fn)  # train.log gets each line once, from the main process
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.model.device)
    distributed.init(on_cpu=device == "cpu")
    if cfg.lora.qlora and device != "cuda":
        raise ConfigError("`lora.qlora` (4-bit NF4) needs an NVIDIA GPU with CUDA; turn QLoRA off to train "
                          "in float32 on this CPU.")
    dtype = pick_dtype(cfg.model.dtype, device)
    if model_and_processor is None:
        spec = dataclasses.replace(cfg.model, load_in_4bit=cfg.lora.qlora, adapter=None)
        model, processor = load(spec)
    else:
        model, processor = model_and_processor
    _apply_budgets(processor, cfg)
    stop_before_training(stop_flag, "while loading the model")
    rows, report = read_and_check(cfg, run_dir, processor, stop_flag, log_fn)
    distributed.main_only(doctor_files)(run_dir, report)
    s = report.summary
    log_fn(f"data doctor: {report.headline().replace(' · ', ', ')} (details in {DOCTOR_MD})")
    for note in report.notes:  # the format read, system prompts, placed media, answers without loss
        log_fn(f"data: {note}")
    if report.error_rows() and not cfg.skip_error_rows:
        raise DataError(f"The data doctor found errors in {D.plural(len(report.error_rows()), 'row')} (see {run_dir / DOCTOR_MD}); "
                        f"fix them or set skip_error_rows: true.")
    kept, counts = D.plan_rows(rows, report, skip_errors=cfg.skip_error_rows)
    notes = []
    if counts.get("skipped_errors"):
        notes.append(f"skipping {D.plural(counts['skipped_errors'], 'row')} with errors")
    if counts.get("resized"):
        notes.append(f"smaller images for {D.plural(counts['resized'], 'row')} to fit max_length={cfg.max_length}")
    if counts.get("skipped_long"):
        notes.append(f"skipping {D.plural(counts['skipped_long'], 'row')} longer than max_length={cfg.max_length}")
    train_rows, eval_rows, note = split_rows(kept, cfg.eval_split, cfg.seed)
    if note:
        notes.append(note)
    for n in notes:
        log_fn("warning: " + n)

    if cfg.lora.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=device == "cuda")
    for p in model.parameters():  # vision tower and everything else frozen; PEFT unfreezes LoRA
        p.requires_grad_(False)
    lora = None
    if cfg.finetuning == "full":
        n_trainable = unfreeze_language_model(model, merger=cfg.lora.train_merger, last_layers=cfg.trainable_layers)
        which = f"the last {cfg.trainable_layers} layers, norm and LM head; " if cfg.trainable_layers else ""
        log_fn(f"full fine-tuning: {n_trainable / 1e6:.2f} M trainable parameters ({which}vision tower frozen)")
    else:
        lora = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=cfg.lora.target_regex(), task_type="CAUSAL_LM", bias="none")
    gc = cfg.gradient_checkpointing == "on" or (cfg.gradient_checkpointing == "auto" and device == "cuda")
    from studio.engine.train import reporting

    report_to = reporting.resolve(cfg.report_to, run_dir)
    args = SFTConfig(
        output_dir=str(run_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        adam_beta2=cfg.adam_beta2,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if eval_rows else "no",
        eval_steps=cfg.eval_steps if eval_rows else None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=dtype == torch.bfloat16,
        fp16=False,
        use_cpu=device == "cpu",
        activation_checkpointing=gc,
        report_to=report_to or "none",
        max_length=cfg.max_length,
        assistant_only_loss=True,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        dataloader_num_workers=cfg.dataloader_workers,
        dataloader_persistent_workers=cfg.dataloader_workers > 0,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        disable_tqdm=True,
        ddp_timeout=distributed.timeout_s(),
    )
    collator = D.Collator(processor, max_length=cfg.max_length, policy=cfg.policy, fps=cfg.fps,
                          max_frames=cfg.max_frames)
    inference_template = processor.chat_template
    from studio.engine.infer import family

    # The family's training twin: same bytes as its chat template, plus {% generation %} for TRL.
    processor.chat_template = D.train_template(family.of(processor, model))
    from studio.engine.train.steptime import StepClock, make_step_time_callback, metrics_sink

    clock = StepClock()
    cbs = sft_callbacks(cfg, run_dir, processor, clock, stop_flag, log_fn)
    cbs.extend(callbacks)
    trainer = trainer_class()(
        model=model, args=args, train_dataset=_dataset(train_rows),
        eval_dataset=_dataset(eval_rows) if eval_rows else None,
        processing_class=processor, data_collator=collator, peft_config=lora, callbacks=cbs,
    )
    # after the skill evaluation's callback, so a step's evaluation counts in that step (phase "eval");
    # TRL averages its _metrics lists at each log, so the time/*_s records reach metrics.jsonl
    trainer.add_callback(make_step_time_callback(clock, metrics_sink(trainer._metrics)))
    trainer.studio_clock = clock
    trainer.studio_plain_loss = device == "cpu"  # TRL's fused LM head has no fast path without Triton
    trainer.studio_inference_template = inference_template
    stop_before_training(stop_flag, "while building the trainer")
    info = {"doctor": s, "rows": len(rows), "train_rows": len(train_rows), "eval_rows": len(eval_rows),
            "notes": notes, "counts": counts}
    return trainer, info


def train(cfg: SFTRunConfig, run_dir: str | os.PathLike, *, stop_flag=None, callbacks: Sequence[Any] = (),
          model_and_processor=None, log_fn=print) -> dict:
    """Run (or resume) one SFT run in ``run_dir``; returns a summary dict.

    The summary: ``status`` (``finished`` / ``stopped``), ``global_step``,
    ``resumed_from`` (checkpoint path or None), ``adapter`` (path or None), ``train_loss``,
    plus the data counts of :func:`build_trainer`.

    Raises:
        ConfigError / DataError / ModelLoadError: see :func:`build_trainer`.
        DiskFullError: a checkpoint could not be written (earlier checkpoints intact).
    """
    from studio.engine.train import distributed, runs

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    cfg.validate()
    log_fn = distributed.main_only(log_fn)
    distributed.main_only(cfg.to_yaml)(run / "config.yaml")
    last = runs.find_last_checkpoint(run) if cfg.resume else None
    try:
        with interruptible(stop_flag, "while starting (importing the training libraries)"):
            import peft, trl  # noqa: F401 - seconds of imports, which Stop ends at once
        trainer, info = build_trainer(cfg, run, stop_flag=stop_flag, callbacks=callbacks,
                                      model_and_processor=model_and_processor, log_fn=log_fn)
        if last:
            log_fn(f"resuming from {last.name}")
        what = ("full fine-tuning of the language model" if cfg.finetuning == "full"
                else f"LoRA rank {cfg.lora.rank} on {cfg.lora.target_regex()}")
        log_fn(f"training on {info['train_rows']} rows ({info['eval_rows']} for eval); {what}")
        out = trainer.train(resume_from_checkpoint=str(last) if last else None)
    except (StoppedBeforeTraining, StoppedError) as e:  # this start trained nothing: say so as the last line
        # a new run leaves no trace of a run; a resumed one keeps its checkpoint and earlier
        # training (mark_stopped_before_training removes nothing where a checkpoint is)
        step = checkpoint_step(last) if last else 0
        reason = e.resumed(step) if last and isinstance(e, StoppedBeforeTraining) else str(e)
        log_fn(reason)
        distributed.main_only(mark_stopped_before_training)(run, reason)
        return {"status": "stopped", "before_training": reason, "global_step": step,
                "resumed_from": str(last) if last else None, "adapter": None, "model": None, "train_loss": None}
    stopped = bool(stop_flag) and bool(stop_flag.is_set())
    processor = trainer.processing_class
    processor.chat_template = trainer.studio_inference_template
    adapter = model_dir = None
    if not stopped and cfg.finetuning == "full":  # one copy, by the main process
        model_dir = run / "model"
        distributed.save_on_main(trainer, lambda sd: save_full_model(trainer.model, processor, model_dir, cfg, sd))
        log_fn(f"saved the fine-tuned model to {model_dir}")
    elif not stopped:
        adapter = run / "adapter"
        distributed.save_on_main(trainer, lambda sd: trainer.model.save_pretrained(str(adapter), state_dict=sd))
        log_fn(f"saved adapter to {adapter}")
    else:
        log_fn(f"stopped at step {trainer.state.global_step}; checkpoint saved, start again to resume")
    distributed.main_first(lambda: share_weights(run, recursive=True))  # the adapter and every checkpoint
    return {"status": "stopped" if stopped else "finished", "global_step": trainer.state.global_step,
            "resumed_from": str(last) if last else None, "adapter": str(adapter) if adapter else None,
            "model": str(model_dir) if model_dir else None,
            "train_loss": getattr(out, "training_loss", None), **info}
