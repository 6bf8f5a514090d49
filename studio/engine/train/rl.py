"""GRPO with curriculum sampling (RLCS) for GLM-4.1V, on TRL's ``GRPOTrainer``.

What this module adds to TRL, and why (see ../shared/RLCS.md for the algorithm and
../shared/FACTS.md for the measured TRL behaviour):

* **Objective** as in the GLM-4.1V-Thinking report (arXiv 2507.01006 §5): ``beta=0``
  (no KL term), clip-higher (``epsilon=0.2``, ``epsilon_high=0.28``, as in DAPO,
  arXiv 2503.14476), rollouts at ``top_p=1.0``, temperature 1.0, and *per-sample*
  loss averaging. TRL 1.16 offers ``loss_type`` ``"grpo"`` (token mean per sequence,
  then mean over sequences = per-sample averaging), ``"bnpo"``/``"dapo"`` (token mean
  over the local / global batch = per-token averaging) and ``"dr_grpo"`` (fixed
  constant). Per-sample is ``"grpo"`` — see the ``loss_type`` entry of
  ``trl.GRPOConfig`` (https://huggingface.co/docs/trl/grpo_trainer#loss-types) and
  ``GRPOTrainer._compute_loss``: ``((per_token_loss * mask).sum(-1) / mask.sum(-1)).mean()``.
* **Curriculum through** ``_get_train_sampler``: :class:`CurriculumSampler` keeps
  TRL's ``RepeatSampler`` layout (each index ``num_generations`` times in a row, each
  block repeated ``steps_per_generation × num_iterations`` times) but chooses each
  block *lazily* from the :class:`~studio.engine.train.curriculum.CurriculumState` when the
  dataloader reaches it. The dataloader prefetches one generation batch, so chosen but
  not yet scored prompts are tracked (:class:`PromptDrawer`) and not drawn twice.
* **Expansion** needs more than public hooks (the pool is larger than the dataloader
  batch): ``_generate_and_score_completions`` is overridden. It draws the extra
  prompts, generates ``G`` rollouts per prompt with a thinking budget and forced
  answering, scores them with the reward registry on text decoded *with* special
  tokens, updates the curriculum with every scored group, keeps the ``B`` groups
  closest to half right, and returns the dict ``GRPOTrainer._compute_loss`` consumes.
  Injected ``</think><answer>`` tokens are attended to but get no loss (TRL's
  ``tool_mask``). A pool without any variance skips the optimizer step (gradients set
  to ``None``, so AdamW's momentum does not move the adapter) and is logged.
* **Video**: TRL 1.16 drops ``pixel_values_videos``/``video_grid_thw`` from its
  log-prob forward (FACTS.md). Media travel per sample in ``mm_*`` list columns that
  TRL's shuffle/split helpers carry unchanged, and ``_get_per_token_logps_and_entropies``
  is overridden to feed images *and* videos plus ``mm_token_type_ids`` to the model.
* **Run folder** like SFT's: ``config.yaml``, ``metrics.jsonl`` (slash names, one line
  per step), ``train.log``, ``rollouts.jsonl``, ``checkpoints/`` (each with
  ``curriculum.json``), ``adapter/``.

Tested against TRL ``>=1.16,<1.17`` (:data:`TRL_RANGE`); the overrides rely on private
methods of that range and :func:`check_trl_version` refuses others.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from studio.config import ModelSpec, YamlConfig, check
from studio.engine.train.curriculum import CurriculumConfig
from studio.engine.train.data import media_mix_problem, resolve_media
from studio.engine.fileperm import share_weights
from studio.engine.rewards import RewardConfig, row_task_type
from studio.errors import ConfigError, DataError, InputError, StudioError

log = logging.getLogger(__name__)

#: TRL versions whose private methods the overrides below were written and tested against.
TRL_RANGE = ("1.16", "1.17")
#: LoRA on the language model only: attention and MLP linears under ``language_model``
#: (FACTS.md: plain names would also hit the vision tower).
LM_LORA_REGEX = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate_up_proj|down_proj))"
#: Text injected when the thinking budget runs out (GLM's benchmark script does the same).
from studio.engine.infer.family import DEFAULT as _GLM41V_FAMILY  # noqa: E402
from studio.engine.infer.family import THINK_CLOSE  # noqa: E402 - the loaded family decides the rest

#: GLM-4.1V's forced-answer text (kept for callers; rollouts use the loaded family's).
FORCE_TEXT = _GLM41V_FAMILY.force_text
CURRICULUM_FILE = "curriculum.json"
RL_STATE_FILE = "rl_state.json"
ROLLOUTS_FILE = "rollouts.jsonl"
FORMAT_GATE_FILE = "format_gate.json"
STOP_REASON_FILE = "stop_reason.txt"


def check_trl_version() -> str:
    """Return TRL's version; raise StudioError outside :data:`TRL_RANGE`."""
    import trl
    from packaging.version import Version

    v = Version(trl.__version__)
    if not (Version(TRL_RANGE[0]) <= v < Version(TRL_RANGE[1])):
        raise StudioError(
            f"RL training was tested with trl>={TRL_RANGE[0]},<{TRL_RANGE[1]} (it overrides private "
            f"GRPOTrainer methods); this environment has trl {trl.__version__}. Install "
            f"`trl>={TRL_RANGE[0]},<{TRL_RANGE[1]}`."
        )
    return trl.__version__


def vllm_available() -> tuple[bool, str]:
    """(ok, reason): vLLM colocate generation needs ``import vllm`` and a CUDA GPU."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:  # checked first: no torch import for the page
        return False, "vLLM is not installed (pip install vllm)"
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA GPU is visible"
    return True, ""


# --------------------------------------------------------------------------- config


@dataclass
class RLRunConfig(YamlConfig):
    """Everything one RL run needs; saved as ``<run>/config.yaml``.

    Batch terms follow TRL: ``per_device_train_batch_size`` counts *completions*; one
    generation batch is ``per_device_train_batch_size × steps_per_generation``
    completions = ``B`` prompts × ``num_generations`` (G). With RLCS the rollout pool is
    ``min(ceil(B·ema), 2B)`` prompts, of which ``B`` groups are kept.

    Attributes:
        model: base model; ``model.adapter`` continues from an SFT adapter.
        data: prompt file (JSONL/JSON; rows with ``prompt``, ``answer``, ``images``/``videos``,
            optional ``task_type`` and ``difficulty``). Relative media paths are relative
            to the file.
        eval_data: held-out prompt file; None: ``eval_fraction`` of ``data`` is held out.
        output_dir: the run folder (created by the CLI/UI).
        rewards: reward functions (registry names, summed) and verifier settings
            (:class:`studio.engine.rewards.RewardConfig`); an unknown name lists the valid ones.
        curriculum: RLCS settings (:class:`studio.engine.train.curriculum.CurriculumConfig`):
            ``mode`` ``"rlcs"`` or ``"uniform"`` (the baseline), tiers, weights, expansion,
            offline grading (``offline_grading``, k = ``offline_samples``, ``cold_start``,
            ``label_weight``) and ``too_easy_patience``.
        thinking_budget / answer_budget: T and A of RLCS.md step 6, in tokens.
        format_gate: ``refuse`` (default: below the threshold the run stops before any
            update, with a message that points to SFT) or ``warn`` (go on anyway;
            ``studio rl --allow-low-format``).
        format_gate_prompts / format_gate_threshold: RLCS.md step 1 (when offline grading
            is on, its samples are the measurement). 32 single samples: with 8, a model that
            writes the format 97 % of the time was refused (6/8 at temperature 1.2).
        num_iterations: μ of the GRPO paper (Shao et al. 2024, Alg. 1): optimizer steps on
            each generated batch, clipped against the generating policy (TRL ``num_iterations``).
            Generation dominates a step on CPU, so μ = 2 roughly doubles the updates per rollout.
        eval_every / kl_every: held-out accuracy and adapter-off KL probe period (steps; 0 = off).
        use_vllm: TRL's colocated vLLM generation (needs vllm + CUDA; image/text prompts).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    data: str = ""
    eval_data: str | None = None
    eval_fraction: float = 0.1
    max_eval_prompts: int = 64
    output_dir: str = ""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    num_generations: int = 4
    per_device_train_batch_size: int = 8
    steps_per_generation: int = 1
    num_iterations: int = 1
    gradient_accumulation_steps: int = 1
    max_steps: int = 60
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "constant"
    max_grad_norm: float = 1.0
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target: str = LM_LORA_REGEX
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float = 0.28
    loss_type: str = "grpo"
    temperature: float = 1.0
    top_p: float = 1.0
    thinking_budget: int = 64
    answer_budget: int = 24
    format_gate_prompts: int = 32
    format_gate_threshold: float = 0.8
    format_gate: str = "refuse"
    eval_every: int = 10
    kl_every: int = 10
    save_every: int = 20
    save_total_limit: int = 2
    rollouts_logged_per_step: int = 8
    video_fps: float = 2.0
    max_frames: int = 16
    use_vllm: bool = False
    vllm_gpu_memory_utilization: float = 0.3
    seed: int = 0

    @property
    def prompts_per_step(self) -> int:
        """B: distinct prompts per generation batch."""
        return self.per_device_train_batch_size * self.steps_per_generation // self.num_generations

    def validate(self) -> None:
        """Check every field; ConfigError names the field and what to change."""
        super().validate()
        check(
            self.num_generations >= 2,
            "num_generations",
            "must be at least 2: GRPO compares several samples of the same prompt (group "
            "advantage), so 1 gives no signal. Use 4–8.",
        )
        gen_batch = self.per_device_train_batch_size * self.steps_per_generation
        check(
            gen_batch % self.num_generations == 0,
            "per_device_train_batch_size",
            f"× steps_per_generation ({self.per_device_train_batch_size} × {self.steps_per_generation} "
            f"= {gen_batch}) must be divisible by num_generations ({self.num_generations}). Change "
            f"per_device_train_batch_size to a multiple of {self.num_generations} (e.g. "
            f"{max(self.num_generations, gen_batch // self.num_generations * self.num_generations)}), "
            f"or num_generations to a divisor of {gen_batch} (in the RL tab: \"Completions per step\" "
            f"must be a multiple of \"Group size G\").",
        )
        check(self.max_steps >= 1, "max_steps", "must be at least 1.")
        check(1 <= self.num_iterations <= 8, "num_iterations",
              "must be between 1 and 8 (μ: optimizer steps on each generated batch; 1 = on-policy).")
        check(self.learning_rate > 0, "learning_rate", "must be positive.")
        check(self.lora_rank >= 1 and self.lora_alpha >= 1, "lora_rank", "and lora_alpha must be >= 1.")
        check(0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1).")
        check(self.beta >= 0, "beta", "must be >= 0 (0 = no KL term, as in the GLM-4.1V report).")
        check(0 < self.epsilon < 1, "epsilon", "must be in (0, 1).")
        check(self.epsilon_high >= self.epsilon, "epsilon_high", "must be >= epsilon (clip-higher).")
        check(self.loss_type in ("grpo", "bnpo", "dapo", "dr_grpo"), "loss_type",
              "must be grpo (per-sample, default), bnpo, dapo or dr_grpo.")
        check(0 < self.temperature <= 2, "temperature", "must be in (0, 2].")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1].")
        check(self.thinking_budget >= 1, "thinking_budget", "must be at least 1 token.")
        check(self.answer_budget >= 1, "answer_budget", "must be at least 1 token.")
        check(0 <= self.eval_fraction < 1, "eval_fraction", "must be in [0, 1).")
        check(0 < self.format_gate_threshold <= 1, "format_gate_threshold", "must be in (0, 1].")
        check(self.format_gate in ("refuse", "warn"), "format_gate",
              "must be refuse (stop below the threshold) or warn (go on anyway).")
        check(self.eval_every >= 0 and self.kl_every >= 0, "eval_every", "and kl_every must be >= 0.")
        check(self.save_every >= 1, "save_every", "must be at least 1.")
        check(0 < self.video_fps <= 30, "video_fps", "must be in (0, 30].")
        check(2 <= self.max_frames <= 600, "max_frames", "must be between 2 and 600.")
        try:
            re.compile(self.lora_target)
        except re.error as e:
            raise ConfigError(f"`lora_target` is not a valid regular expression: {e}.") from None
        if not self.data:
            raise ConfigError("`data` is empty: pick a prompt file (JSONL), e.g. sample_data/rl/prompts.jsonl.")


# --------------------------------------------------------------------------- rewards


def reward_names() -> list[str]:
    """Names in the reward registry (:data:`studio.engine.rewards.REGISTRY`)."""
    from studio.engine import rewards

    return list(rewards.REGISTRY)


# --------------------------------------------------------------------------- data


@dataclass
class RLPrompt:
    """One RL prompt.

    Attributes:
        idx: position in the loaded list (the id the curriculum and sampler use).
        text: the user text without media placeholders.
        images: absolute image paths (in order); videos: absolute video paths (0 or 1).
        answer: the reference answer (string; the verifier parses it).
        task_type: verifier kind passed to the reward (``exact``, ``numeric``, ``count`` …).
        difficulty: optional user label (1–5, 1 = easiest, or very_easy … very_hard; see
            :func:`studio.engine.train.curriculum.label_prior`); None if absent.
        row: the original row (every column reaches the reward function).
        line: 1-based line/row number in the source file (for messages).
    """

    idx: int
    text: str
    images: list[str]
    videos: list[str]
    answer: str
    task_type: str
    difficulty: Any
    row: dict
    line: int


_PLACEHOLDER = re.compile(r"<(image|video)>")


def _read_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DataError(f"{path} is not valid JSON ({e}).") from None
        if not isinstance(data, list):
            raise DataError(f"{path} must hold a JSON list of prompt rows.")
        return data
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            rows.append(None)
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise DataError(f"{path}: line {n} is not valid JSON ({e}).") from None
    return rows


def _as_list(v: Any) -> list[str]:
    if v is None or v == "":
        return []
    return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]


def load_prompts(path: str | Path) -> list[RLPrompt]:
    """Read RL prompts from a JSONL/JSON file (the format ``studio tasks`` writes).

    Accepted columns: text in ``prompt`` (string, ``<image>``/``<video>`` placeholders
    allowed, or a messages list whose last user turn is taken), ``question`` or
    ``problem``; media in ``images``/``image`` and ``videos``/``video``, confined to the
    file's folder exactly as SFT data (:func:`studio.engine.train.data.resolve_media`: relative
    paths, or absolute ones inside that folder; images *or* one video per row); reference in ``answer`` (or ``solution``); optional
    ``task_type`` (default ``exact``) and ``difficulty``.

    Raises:
        DataError: missing file, bad JSON, empty file, a row without text, a prompt
            without a reference answer (row numbers listed), a missing media file, a media
            path outside the file's folder (``..``, absolute elsewhere, a URL, a symlink
            leaving it), images and a video in one row.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(
            f"Prompt file {str(p)!r} does not exist. Pick a JSONL file, e.g. sample_data/rl/prompts.jsonl, "
            f"or make one with `studio tasks --out DIR`."
        )
    out: list[RLPrompt] = []
    no_answer, no_text, missing, mixed = [], [], [], []
    for n, r in enumerate(_read_rows(p), 1):
        if r is None:
            continue
        if not isinstance(r, dict):
            raise DataError(f"{p}: row {n} must be a JSON object.")
        text = r.get("prompt", r.get("question", r.get("problem")))
        if isinstance(text, list):
            text = next((m.get("content") for m in reversed(text) if m.get("role") == "user"), None)
            if isinstance(text, list):
                text = "".join(c.get("text", "") for c in text if isinstance(c, dict))
        if not isinstance(text, str) or not _PLACEHOLDER.sub("", text).strip():
            no_text.append(n)
            continue
        answer = r.get("answer", r.get("solution"))
        if answer is None or str(answer).strip() == "":
            no_answer.append(n)
            continue
        media = {}
        for key, alt in (("images", "image"), ("videos", "video")):
            resolved = []
            for m in _as_list(r.get(key, r.get(alt))):
                # the SFT rule, same function: inside the prompt file's folder or refused
                full = resolve_media(m, p.parent, f"{p.name} row {n}")
                if not Path(full).is_file():
                    missing.append(f"row {n}: {m}")
                resolved.append(full)
            media[key] = resolved
        if why := media_mix_problem(len(media["images"]), len(media["videos"])):
            mixed.append(f"row {n} {why}")
            continue
        if r.get("task_type"):
            # a word among the row's ``choices`` is scored by exact match (rewards.row_task_type)
            r = {**r, "task_type": row_task_type(r["task_type"], answer, r.get("choices"))}
        diff = r.get("difficulty")
        diff = None if diff in (None, "") else diff
        out.append(RLPrompt(
            idx=len(out), text=_PLACEHOLDER.sub("", text).strip(), images=media["images"],
            videos=media["videos"], answer=str(answer).strip(), task_type=str(r.get("task_type") or ""),
            difficulty=diff, row=r, line=n,
        ))
    if no_answer:
        raise DataError(
            f"{p}: {len(no_answer)} prompt(s) have no reference answer (rows {_rows(no_answer)}). "
            f"RL needs an `answer` column the verifier can check; add it or remove those rows."
        )
    if no_text:
        raise DataError(f"{p}: rows {_rows(no_text)} have no prompt text; add a `prompt` (or `question`) column.")
    if mixed:
        raise DataError(f"{p}: {'; '.join(mixed[:3])}{' …' if len(mixed) > 3 else ''}. Split such rows into one "
                        f"with the images and one with the video.")
    if missing:
        raise DataError(f"{p}: media file(s) not found: {'; '.join(missing[:5])}"
                        f"{' …' if len(missing) > 5 else ''}. Paths are relative to the prompt file.")
    if not out:
        raise DataError(f"{p} has no prompt rows.")
    return out


def _rows(ns: Sequence[int]) -> str:
    s = ", ".join(str(n) for n in ns[:10])
    return s + (f" and {len(ns) - 10} more" if len(ns) > 10 else "")


def check_references(prompts: Sequence[RLPrompt], rewards_cfg: RewardConfig | None = None) -> None:
    """Doctor step: every reference answer must be parseable by its row's verifier.

    The verifier is the row's ``task_type`` (``rewards_cfg.default_task_type`` when a
    row has none; ``"auto"`` infers it from the reference), checked with
    :func:`studio.engine.rewards.check_reference`, which refuses references no answer
    could match and says what to change.

    Raises:
        DataError: listing the rows (file line numbers) and why each one fails.
    """
    from studio.engine import rewards

    cfg = rewards_cfg or RewardConfig()
    bad = []
    for pr in prompts:
        tt = pr.row.get("task_type") or cfg.default_task_type
        problem = rewards.check_reference(pr.answer, tt, row=pr.line)
        if problem:
            bad.append(problem)
    if bad:
        raise DataError(
            f"{len(bad)} reference answer(s) cannot be parsed by their verifier — "
            f"{'; '.join(bad[:5])}{' …' if len(bad) > 5 else ''}. Fix the answers or the rows' task_type."
        )


def split_eval(prompts: list[RLPrompt], fraction: float, max_eval: int, seed: int):
    """Hold out ``fraction`` (at most ``max_eval``) of prompts; returns (train, eval), re-indexed."""
    if fraction <= 0 or len(prompts) < 4:
        return prompts, []
    rng = random.Random(seed)
    order = list(range(len(prompts)))
    rng.shuffle(order)
    n_eval = min(max_eval, max(1, int(round(len(prompts) * fraction))))
    ev = sorted(order[:n_eval])
    tr = sorted(order[n_eval:])
    return ([dataclasses.replace(prompts[i], idx=k) for k, i in enumerate(tr)],
            [dataclasses.replace(prompts[i], idx=k) for k, i in enumerate(ev)])


def check_data(cfg: "RLRunConfig", *, references: bool = True) -> tuple[list[RLPrompt], list[RLPrompt]]:
    """Load and check a run's prompts without a model: what must hold before a run folder
    is made (the CLI and the RL tab call it first) and again when training starts.

    Args:
        cfg: the run config (``data``, ``eval_data``, split and batch settings).
        references: also check that every reference answer parses for its verifier.

    Returns: (training prompts, held-out prompts).

    Raises:
        DataError: see :func:`load_prompts` and :func:`check_references`.
        ConfigError: fewer training prompts than one step needs; ``use_vllm`` with videos
            or without vLLM/CUDA.
    """
    prompts = load_prompts(cfg.data)
    if cfg.eval_data:
        train, evals = prompts, load_prompts(cfg.eval_data)[: cfg.max_eval_prompts]
    else:
        train, evals = split_eval(prompts, cfg.eval_fraction, cfg.max_eval_prompts, cfg.seed)
    if references:
        check_references(train + evals, cfg.rewards)
    B = cfg.prompts_per_step
    if len(train) < B:
        raise ConfigError(
            f"`per_device_train_batch_size` asks for {B} prompts per step but the training split has only "
            f"{len(train)}; add prompts or lower per_device_train_batch_size to {len(train) * cfg.num_generations}."
        )
    if any(p.videos for p in train) and cfg.use_vllm:
        raise ConfigError("`use_vllm` supports image and text prompts only; this data has videos. Turn use_vllm off.")
    if cfg.use_vllm:
        ok, why = vllm_available()
        if not ok:
            raise ConfigError(f"`use_vllm` needs vLLM and a CUDA GPU: {why}. Turn use_vllm off to generate "
                              f"with transformers.")
    return train, evals


# --------------------------------------------------------------------------- media & batching


class PromptEncoder:
    """Render + process each prompt once (cached): tensors with batch dim 1.

    Keys: ``input_ids`` (1, L) int64, ``mm_token_type_ids`` (1, L), and when present
    ``pixel_values`` (N_patches, C·T·P·P) float32 + ``image_grid_thw`` (n_images, 3),
    ``pixel_values_videos`` + ``video_grid_thw`` (n_videos, 3).
    """

    def __init__(self, processor, fps: float = 2.0, max_frames: int = 16, cache_size: int = 4096):
        self.processor = processor
        self.fps, self.max_frames = fps, max_frames
        self.cache: dict[tuple, dict] = {}
        self.cache_size = cache_size

    def messages(self, p: RLPrompt) -> list[dict]:
        """Chat-template messages of one prompt (media first, then the text)."""
        content = [{"type": "image"} for _ in p.images] + [{"type": "video"} for _ in p.videos]
        content.append({"type": "text", "text": p.text})
        return [{"role": "user", "content": content}]

    def __call__(self, p: RLPrompt, key: Any = None) -> dict:
        key = (key, p.idx, p.text)
        if key in self.cache:
            return self.cache[key]
        text = self.processor.apply_chat_template(self.messages(p), add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if p.images:
            kwargs["images"] = [_load_image(x) for x in p.images]
        if p.videos:
            clips = [_load_video(x, self.fps, self.max_frames) for x in p.videos]
            kwargs["videos"] = [c[0] for c in clips]
            kwargs["video_metadata"] = [c[1] for c in clips]
            kwargs["do_sample_frames"] = False
        enc = dict(self.processor(**kwargs))
        enc.pop("attention_mask", None)
        enc["_images"] = kwargs.get("images")  # PIL images, for vLLM generation
        if len(self.cache) >= self.cache_size:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = enc
        return enc


def _load_image(path: str):
    try:
        from studio.engine.infer import media

        return media.load_image(path)
    except ImportError:
        from PIL import Image

        with Image.open(path) as im:
            return im.convert("RGB")


def _load_video(path: str, fps: float, max_frames: int):
    """(frames uint8 (T,H,W,3), metadata dict) through studio.engine.infer.media (PyAV)."""
    try:
        from studio.engine.infer import media
    except ImportError as e:  # pragma: no cover - media.py ships with the product
        raise InputError("Video prompts need studio.engine.infer.media (PyAV decoding).") from e
    clip = media.load_video(path, fps=fps, max_frames=max_frames)
    return clip.frames, clip.metadata


def collate(encs: Sequence[dict], pad_id: int, suffixes: Sequence[Sequence[int]] | None = None) -> dict:
    """Left-pad a list of per-prompt encodings into one generation batch.

    Args:
        encs: outputs of :class:`PromptEncoder` (batch dim 1 each); may repeat.
        pad_id: pad token id (GLM pads on the left).
        suffixes: optional token ids appended to each prompt (phase-2 continuation);
            ``mm_token_type_ids`` are extended with 0 for them.

    Returns:
        ``input_ids``/``attention_mask``/``mm_token_type_ids`` (N, Lmax) int64 and the
        concatenated media tensors in row order.
    """
    import torch

    ids, mm = [], []
    for k, e in enumerate(encs):
        suf = list(suffixes[k]) if suffixes is not None else []
        ids.append(e["input_ids"][0].tolist() + suf)
        mm.append(e["mm_token_type_ids"][0].tolist() + [0] * len(suf))
    L = max(len(x) for x in ids)
    out = {
        "input_ids": torch.tensor([[pad_id] * (L - len(x)) + x for x in ids], dtype=torch.long),
        "attention_mask": torch.tensor([[0] * (L - len(x)) + [1] * len(x) for x in ids], dtype=torch.long),
        "mm_token_type_ids": torch.tensor([[0] * (L - len(x)) + x for x in mm], dtype=torch.long),
    }
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        parts = [e[key] for e in encs if e.get(key) is not None]
        if parts:
            out[key] = torch.cat(parts, 0)
    return out


def media_groups(encs: Sequence[dict]) -> list[list[int]]:
    """Row indices split into (image/text rows, video rows), empty groups dropped.

    transformers' Glm4v marks video frames with the *image* token, so a batch holding both
    images and videos fails ("Image features and image tokens do not match"); generation
    and the log-prob forward therefore run each group separately.
    """
    img = [k for k, e in enumerate(encs) if e.get("pixel_values_videos") is None]
    vid = [k for k, e in enumerate(encs) if e.get("pixel_values_videos") is not None]
    return [g for g in (img, vid) if g]


# --------------------------------------------------------------------------- rollouts


@dataclass
class Rollout:
    """One sampled completion.

    Attributes:
        ids: completion token ids (generated + injected), ending at the first EOS if any.
        loss_mask: 1 for generated tokens, 0 for injected ``</think><answer>`` tokens.
        forced: the thinking budget ran out and the answer was forced.
        truncated: no EOS within the budgets.
        text: decoded with special tokens kept.
    """

    ids: list[int]
    loss_mask: list[int]
    forced: bool = False
    truncated: bool = False
    text: str = ""


class RolloutGenerator:
    """Sample ``G`` completions per prompt with a thinking budget and forced answering.

    Phase 1 samples up to ``thinking_budget`` tokens. Rows that did not stop: if
    ``</think>`` is missing, ``</think><answer>`` is injected (``forced``); either way
    they continue for up to ``answer_budget`` tokens (phase 2). Rows still open after
    that are ``truncated``. The batch is repeated by hand (FACTS.md: ``generate`` with
    ``num_return_sequences > 1`` crashes on video prompts).
    """

    def __init__(self, processor, *, thinking_budget: int, answer_budget: int, temperature: float = 1.0,
                 top_p: float = 1.0, eos_ids: Sequence[int] | None = None, max_batch: int = 64):
        tok = processor.tokenizer
        self.processor, self.tok = processor, tok
        self.T, self.A = thinking_budget, answer_budget
        self.temperature, self.top_p = temperature, top_p
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        from studio.engine.infer import family

        fam = family.of(processor)
        # The family's answer opener: GLM-4.1V </think><answer>, GLM-4.6V </think> + newline.
        self.force_ids = tok.encode(fam.force_text, add_special_tokens=False)
        self.think_close = tok.convert_tokens_to_ids(THINK_CLOSE)
        stop = list(eos_ids or [])
        ans_close = tok.convert_tokens_to_ids(fam.answer_close) if fam.answer_close else None
        if ans_close is not None and ans_close != tok.unk_token_id and ans_close not in stop:
            stop.append(ans_close)  # GLM-4.1V's generation config stops on </answer> too (FACTS.md)
        self.eos_ids = stop
        self.max_batch = max_batch
        # A completion must never contain media placeholders: the log-prob forward would
        # count them as image tokens without features (random/tiny models do emit them).
        media = ["<|image|>", "<|video|>", "<|begin_of_image|>", "<|end_of_image|>",
                 "<|begin_of_video|>", "<|end_of_video|>"]
        self.suppress = [i for i in tok.convert_tokens_to_ids(media) if i is not None and i != tok.unk_token_id]

    def _gen_config(self, max_new: int, greedy: bool):
        from transformers import GenerationConfig

        if greedy:
            # top_k=50 is transformers' neutral default: None would let the checkpoint's own
            # sampling top_k (2 for GLM) merge into a greedy config and print a warning.
            return GenerationConfig(do_sample=False, max_new_tokens=max_new, eos_token_id=self.eos_ids,
                                    pad_token_id=self.pad_id, top_k=50, top_p=None, temperature=None,
                                    suppress_tokens=self.suppress)
        return GenerationConfig(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=0,
                                max_new_tokens=max_new, eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
                                suppress_tokens=self.suppress)

    #: Set by the trainer when ``use_vllm``: a callable ``(prompt_ids, images, max_new) -> completions``.
    vllm_generate: Callable | None = None

    def _generate(self, model, encs, suffixes, max_new: int, greedy: bool) -> list[list[int]]:
        import torch

        if self.vllm_generate is not None and not greedy:
            ids = [e["input_ids"][0].tolist() + (list(suffixes[k]) if suffixes is not None else [])
                   for k, e in enumerate(encs)]
            images = [e.get("_images") for e in encs]
            raw = self.vllm_generate(ids, images if any(images) else None, max_new)
            outs = []
            for row in raw:
                cut = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
                outs.append(list(row) if cut is None else list(row[:cut + 1]))
            return outs

        device = next(model.parameters()).device
        outs: list[list[int] | None] = [None] * len(encs)
        for rows in media_groups(encs):  # Glm4v cannot mix images and videos in one batch
            for s in range(0, len(rows), self.max_batch):
                part = rows[s:s + self.max_batch]
                suf = [suffixes[k] for k in part] if suffixes is not None else None
                batch = {k: v.to(device) for k, v in collate([encs[k] for k in part], self.pad_id, suf).items()}
                with torch.no_grad():
                    seq = model.generate(**batch, generation_config=self._gen_config(max_new, greedy))
                new = seq[:, batch["input_ids"].shape[1]:].tolist()
                for k, row in zip(part, new):
                    cut = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
                    outs[k] = row if cut is None else row[:cut + 1]
        return outs  # type: ignore[return-value]

    def __call__(self, model, encs: Sequence[dict], num_generations: int = 1, greedy: bool = False) -> list[Rollout]:
        """Return ``len(encs) × num_generations`` rollouts, grouped by prompt (prompt-major)."""
        rows = [e for e in encs for _ in range(num_generations)]
        first = self._generate(model, rows, None, self.T, greedy)
        rolls = [Rollout(ids=list(ids), loss_mask=[1] * len(ids)) for ids in first]
        todo = []
        for k, r in enumerate(rolls):
            if r.ids and r.ids[-1] in self.eos_ids:
                continue
            if self.think_close not in r.ids:
                r.ids += self.force_ids
                r.loss_mask += [0] * len(self.force_ids)
                r.forced = True
            todo.append(k)
        if todo:
            cont = self._generate(model, [rows[k] for k in todo], [rolls[k].ids for k in todo], self.A, greedy)
            for k, ids in zip(todo, cont):
                rolls[k].ids += ids
                rolls[k].loss_mask += [1] * len(ids)
        for r in rolls:
            r.truncated = not (r.ids and r.ids[-1] in self.eos_ids)
            r.text = self.tok.decode(r.ids, skip_special_tokens=False)
        return rolls


# --------------------------------------------------------------------------- scoring


class Scorer:
    """Rewards through the registry, on text decoded with special tokens kept.

    The reward of a completion is the sum of ``cfg.functions`` (TRL's equal-weight
    sum); ``__call__(texts, prompts)`` returns (rewards, format_ok) lists.

    Args:
        cfg: the run's :class:`~studio.engine.rewards.RewardConfig`.
        fn: a registry-signature function used instead of ``cfg.functions`` (tests).
    """

    def __init__(self, cfg: RewardConfig, fn: Callable | None = None, family=None):
        from studio.engine.infer import family as family_mod
        from studio.engine import rewards

        # Completions are rewritten into GLM-4.1V's format before scoring (Family.as_reference),
        # so the reward code keeps one format and the loaded family decides what is correct.
        self.family = family or family_mod.DEFAULT
        self.cfg = cfg
        self.fns = [fn] if fn is not None else rewards.build_reward_funcs(cfg)
        self.name = "+".join(getattr(f, "__name__", "reward") for f in self.fns)
        self._format = rewards.get_reward("format", **cfg.settings())

    def fn(self, texts: list[str], **cols) -> list[float]:
        """Summed reward per completion (registry signature)."""
        texts = [self.family.as_reference(t) for t in texts]
        per = [[float(x) for x in f(list(texts), **cols)] for f in self.fns]
        return [sum(v) for v in zip(*per)]

    def __call__(self, texts: Sequence[str], prompts: Sequence[RLPrompt]) -> tuple[list[float], list[bool]]:
        cols = _columns(prompts)
        rewards = self.fn(list(texts), **cols)
        fmt = [float(x) > 0 for x in self._format([self.family.as_reference(t) for t in texts], **cols)]
        return rewards, fmt


def _columns(prompts: Sequence[RLPrompt]) -> dict[str, list]:
    """Every dataset column, one value per completion (TRL's reward-function convention)."""
    keys: list[str] = []
    for p in prompts:
        keys += [k for k in p.row if k not in keys]
    cols = {k: [p.row.get(k) for p in prompts] for k in keys if k not in ("prompt", "completion")}
    cols["answer"] = [p.answer for p in prompts]
    cols["task_type"] = [p.row.get("task_type") or None for p in prompts]
    return cols


def trl_reward(scorer: Scorer, tokenizer) -> Callable:
    """A TRL-signature reward function that re-decodes ``completion_ids`` keeping special tokens.

    TRL decodes completions with ``skip_special_tokens=True``, which can drop the tags;
    this wrapper ignores ``completions`` and decodes ``completion_ids`` itself.
    """

    def reward(prompts, completions, completion_ids, **kwargs):
        texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=False)
        cols = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(texts)}
        return [float(x) for x in scorer.fn(texts, **cols)]

    reward.__name__ = scorer.name
    return reward


# --------------------------------------------------------------------------- sampler


class PromptDrawer:
    """Lazy prompt choice from the curriculum, tracking chosen-but-unscored prompts.

    ``draw(B)`` asks :meth:`CurriculumState.draw` for the next rollout pool
    (``draw_size(B)`` prompts in ``rlcs`` mode, ``B`` in ``uniform``), never one that is
    still pending: the dataloader prefetches the next generation batch before the
    current one is scored. The first ``B`` go to the dataloader; the rest (the
    expansion) wait in a FIFO until the trainer asks for them with :meth:`extras_for`.
    :meth:`settle` releases prompts once scored.
    """

    def __init__(self, state, n_prompts: int):
        self.state = state
        self.n = n_prompts
        self.pending: list[int] = []
        self._extras: list[tuple[list[int], list[int]]] = []

    def draw(self, n: int) -> list[int]:
        """The ``n`` dataloader prompts of the next block (its extras are queued)."""
        pool = list(self.state.draw(n, pending=self.pending))
        if len(pool) < n:  # tiny dataset: everything else is pending; repeat pending prompts
            pool += list(self.state.draw(n - len(pool), pending=pool))[: n - len(pool)]
        base, extra = pool[:n], pool[n:]
        self.pending += pool
        self._extras.append((base, extra))
        return base

    def extras_for(self, base: Sequence[int]) -> list[int]:
        """The expansion prompts drawn together with ``base`` (removed from the queue)."""
        for k, (b, extra) in enumerate(self._extras):
            if list(b) == list(base):
                del self._extras[k]
                return extra
        return []

    def settle(self, ids: Sequence[int]) -> None:
        """Mark prompts as scored (removes one pending entry per id)."""
        for i in ids:
            if i in self.pending:
                self.pending.remove(i)

    def reset(self) -> None:
        """Forget pending prompts (a new dataloader iterator starts from scratch)."""
        self.pending.clear()
        self._extras.clear()


class CurriculumSampler:
    """``torch.utils.data.Sampler`` with TRL ``RepeatSampler``'s structure, drawn lazily.

    Yields, per generation batch, ``B`` prompt indices each ``mini_repeat_count`` (G)
    times in a row, and repeats that block ``repeat_count`` (steps_per_generation ×
    num_iterations) times — exactly ``RepeatSampler``'s order — but the ``B`` indices
    come from ``draw(B)`` at the moment the iterator reaches the block.

    Args:
        draw: callable ``n -> list[int]`` (e.g. :meth:`PromptDrawer.draw`).
        batch_size: B, distinct prompts per block.
        mini_repeat_count: G.
        repeat_count: steps_per_generation × num_iterations.
        num_batches: blocks per epoch (``__len__`` = num_batches·B·G·repeat_count).
    """

    def __init__(self, draw: Callable[[int], list[int]], batch_size: int, mini_repeat_count: int,
                 repeat_count: int, num_batches: int):
        self.draw = draw
        self.batch_size, self.mini_repeat_count = batch_size, mini_repeat_count
        self.repeat_count, self.num_batches = repeat_count, num_batches

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.num_batches):
            chunk = self.draw(self.batch_size)
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return self.num_batches * self.batch_size * self.mini_repeat_count * self.repeat_count


# --------------------------------------------------------------------------- trainer


def _trainer_base():
    from trl import GRPOTrainer

    return GRPOTrainer


def _make_trainer_class():
    import torch
    from transformers import TrainerCallback

    GRPOTrainer = _trainer_base()

    class _SkipAndStop(TrainerCallback):
        """Drop gradients of skipped (no-variance) steps; stop when prompts are too easy."""

        def __init__(self, trainer):
            self.trainer = trainer

        def on_pre_optimizer_step(self, args, state, control, **kw):
            if self.trainer._skip_step:
                for p in self.trainer.model.parameters():
                    p.grad = None

        def on_step_end(self, args, state, control, **kw):
            self.trainer._skip_step = False
            if self.trainer.stop_reason:
                control.should_training_stop = True
                control.should_save = True

    class StudioGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` with RLCS sampling, expansion, forced answering and video in the loss.

        Overrides (TRL 1.16): ``_get_train_sampler`` (lazy curriculum sampler),
        ``_generate_and_score_completions`` (pool → rollouts → rewards → curriculum
        update → group selection), ``_get_per_token_logps_and_entropies`` (images and
        videos in the log-prob forward), ``_compute_loss`` (hands the per-sample media to
        the forward), ``_save_checkpoint`` (writes ``curriculum.json``).
        """

        def __init__(self, *a, studio: "_RunContext", **kw):
            self.studio = studio
            self._skip_step = False
            self.stop_reason: str | None = None
            self._media_stash: dict | None = None
            self.rollouts_total = 0
            super().__init__(*a, **kw)
            self.add_callback(_SkipAndStop(self))
            if self.use_vllm:
                studio.generator.vllm_generate = self._vllm_generate

        def _vllm_generate(self, prompt_ids, images, max_new):
            """Sample one completion per prompt with TRL's colocated vLLM (weights synced per step).

            Not exercised by the CPU test suite (needs vLLM + CUDA); mirrors
            ``GRPOTrainer._generate_single_turn``'s vLLM branch.
            """
            vg = self.vllm_generation
            if self.state.global_step != self._last_loaded_step:
                vg.sync_weights()
                self._last_loaded_step = self.state.global_step
            old = vg.max_completion_length
            vg.max_completion_length = max_new
            try:
                _, completion_ids, _, _ = vg.generate(prompts=prompt_ids, images=images, num_generations=1)
            finally:
                vg.max_completion_length = old
            return completion_ids

        # ---- sampler
        def _get_train_sampler(self, dataset=None):
            s = self.studio
            s.drawer.reset()
            repeat = self.num_iterations * self.args.steps_per_generation
            gens = math.ceil(self.args.max_steps * self.args.gradient_accumulation_steps / repeat) + 2
            return CurriculumSampler(s.drawer.draw, s.cfg.prompts_per_step, self.num_generations, repeat, gens)

        # ---- generation + scoring
        def _generate_and_score_completions(self, inputs):
            if not self.model.training:  # evaluation through Trainer.evaluate: plain scoring of the batch
                return self._score_pool([x["idx"] for x in inputs[:: self.num_generations_eval]], [], train=False)
            G = self.num_generations
            ids = [int(x["idx"]) for x in inputs[::G]]
            return self._score_pool(ids, self._extra_prompts(ids), train=True)

        def _extra_prompts(self, base: list[int]) -> list[int]:
            return self.studio.drawer.extras_for(base)

        def _score_pool(self, base_ids: list[int], extra_ids: list[int], train: bool):
            s, G = self.studio, (self.num_generations if train else self.num_generations_eval)
            device = self.accelerator.device
            step = self.state.global_step
            if train and s.cfg.eval_every and step % s.cfg.eval_every == 0:  # the model after `step` updates
                self._metrics["train"]["eval/accuracy"].append(s.evaluate(self.model))
                self._metrics["train"]["eval/rollouts"].append(float(self.rollouts_total))
            pool = base_ids + extra_ids
            prompts = [s.train[i] for i in pool]
            encs = [s.encoder(p, key="train") for p in prompts]
            model = self.accelerator.unwrap_model(self.model)
            t0 = time.perf_counter()
            rolls = s.generator(model, encs, G)
            gen_s = time.perf_counter() - t0
            per_row_prompts = [p for p in prompts for _ in range(G)]
            rewards, fmt = s.scorer([r.text for r in rolls], per_row_prompts)
            R = torch.tensor(rewards, dtype=torch.float32).view(len(pool), G)
            results = {i: R[k].tolist() for k, i in enumerate(pool)}
            thr = s.state.config.correct_threshold
            correct = (R >= thr).sum(1).tolist()
            zero_var = [bool((R[k].max() - R[k].min()) <= 1e-12) for k in range(len(pool))]
            self.rollouts_total += len(rolls)
            if train:
                s.drawer.settle(pool)
                sel = s.state.select_groups(results, len(base_ids))
                s.state.update(results)
                pos = {i: k for k, i in enumerate(pool)}
                keep = [pos[i] for i in sel.kept]
                self._skip_step = sel.skip_update
                if self._skip_step:
                    s.log(f"step {step + 1}: no group with reward variance among {len(pool)} rolled-out prompts; "
                          f"update skipped")
                if s.state.too_easy() and not self.stop_reason:
                    self.stop_reason = s.state.too_easy_message() + f" (stopped at step {step + 1})"
                    s.log(self.stop_reason)
                    (s.run_dir / STOP_REASON_FILE).write_text(self.stop_reason + "\n", encoding="utf-8")
            else:
                keep = list(range(len(pool)))
            rows = [g * G + j for g in keep for j in range(G)]
            Rk = R[keep]
            mean = Rk.mean(1, keepdim=True)
            std = Rk.std(1, keepdim=True) if G > 1 else torch.zeros_like(mean)
            adv = ((Rk - mean) / (std + 1e-4)).view(-1)
            out = self._pack([encs[g] for g in keep], [rolls[r] for r in rows], G, adv, device)
            mode = "train" if train else "eval"
            self._log_rollout_metrics(mode, rolls, rewards, fmt, correct, zero_var, pool, keep, len(base_ids),
                                      gen_s, prompts)
            if train and s.cfg.kl_every and step % s.cfg.kl_every == 0:
                self._metrics["train"]["kl/probe"].append(self._kl_probe(out))
            if train:
                # rollouts of the step being taken: numbered as status, metrics.jsonl and train.log number it
                s.write_rollouts(step + 1, [(prompts[r // G], rolls[r], rewards[r]) for r in range(len(rolls))])
            return out

        def _pack(self, encs, rolls, G, advantages, device):
            """Build the dict TRL's ``_compute_loss`` consumes (+ per-sample ``mm_*`` media)."""
            s = self.studio
            pad = s.generator.pad_id
            prompt_rows = [e for e in encs for _ in range(G)]
            P = max(e["input_ids"].shape[1] for e in prompt_rows)
            C = max(1, max(len(r.ids) for r in rolls))
            pid, pmask, mm, cid, cmask, lmask = [], [], [], [], [], []
            for e, r in zip(prompt_rows, rolls):
                x = e["input_ids"][0].tolist()
                t = e["mm_token_type_ids"][0].tolist()
                pid.append([pad] * (P - len(x)) + x)
                pmask.append([0] * (P - len(x)) + [1] * len(x))
                mm.append([0] * (P - len(t)) + t + [0] * C)
                cid.append(r.ids + [pad] * (C - len(r.ids)))
                cmask.append([1] * len(r.ids) + [0] * (C - len(r.ids)))
                lmask.append(r.loss_mask + [0] * (C - len(r.ids)))
            T = lambda v: torch.tensor(v, dtype=torch.long, device=device)  # noqa: E731
            completion_mask, tool_mask = T(cmask), T(lmask)
            out = {
                "prompt_ids": T(pid), "prompt_mask": T(pmask),
                "completion_ids": T(cid), "completion_mask": completion_mask,
                "tool_mask": tool_mask,  # injected </think><answer> tokens: attended, no loss
                "mm_token_type_ids": T(mm),
                "advantages": advantages.to(device),
                "num_items_in_batch": (completion_mask * tool_mask).sum(),
            }
            for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
                if any(e.get(key) is not None for e in prompt_rows):
                    out["mm_" + key] = [e.get(key) for e in prompt_rows]
            return out

        def _log_rollout_metrics(self, mode, rolls, rewards, fmt, correct, zero_var, pool, keep, B, gen_s, prompts):
            s, m = self.studio, self._metrics[mode]
            n = len(rolls)
            rt = torch.tensor(rewards)
            lengths = torch.tensor([float(sum(r.loss_mask)) for r in rolls])
            m["rewards/mean"].append(rt.mean().item())
            m["rewards/std"].append(rt.std().item() if n > 1 else 0.0)
            m["rollout/format_correct"].append(sum(fmt) / n)
            m["rollout/forced_answer"].append(sum(r.forced for r in rolls) / n)
            m["rollout/truncated"].append(sum(r.truncated for r in rolls) / n)
            m["completions/length_mean"].append(lengths.mean().item())
            m["completions/length_max"].append(lengths.max().item())
            m["rollout/generate_seconds"].append(gen_s)
            m["rollout/rollouts_total"].append(float(self.rollouts_total))
            m["curriculum/informative_groups"].append(float(sum(1 for k in keep if not zero_var[k])))
            if mode == "train":
                m["curriculum/skipped_update"].append(float(self._skip_step))
                for k, v in s.state.metrics().items():  # tiers, weights, r, expansion EMA, draw size
                    if v is not None:
                        m[k].append(float(v))
            else:
                m["curriculum/zero_variance_frac"].append(sum(zero_var) / len(zero_var))

        @torch.no_grad()
        def _kl_probe(self, batch) -> float:
            """KL(π_θ ‖ π_base) on the batch's completions; base = adapter disabled (beta=0 has no ref)."""
            model = self.accelerator.unwrap_model(self.model)
            ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
            att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
            keep = batch["completion_ids"].shape[1]
            media = {k: v for k, v in batch.items() if k.startswith("mm_") and k != "mm_token_type_ids"}
            self._media_stash = media
            try:
                logp, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, ids, att, keep, mm_token_type_ids=batch["mm_token_type_ids"])
                with model.disable_adapter():
                    ref, _, _ = self._get_per_token_logps_and_entropies(
                        self.model, ids, att, keep, mm_token_type_ids=batch["mm_token_type_ids"])
            finally:
                self._media_stash = None
            mask = (batch["completion_mask"] * batch["tool_mask"]).float()
            d = ref - logp
            k3 = torch.exp(d) - d - 1  # Schulman's k3 estimator of KL(π_θ‖π_ref), as TRL uses for beta>0
            return ((k3 * mask).sum() / mask.sum().clamp(min=1)).item()

        # ---- loss forward with images and videos
        def _compute_loss(self, model, inputs):
            self._media_stash = {k: v for k, v in inputs.items() if k.startswith("mm_") and k != "mm_token_type_ids"}
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self._media_stash = None

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               mm_token_type_ids=None, **unused):
            media = self._media_stash or {}
            n = input_ids.size(0)
            batch_size = batch_size or n
            has_video = media.get("mm_pixel_values_videos") or [None] * n
            groups = [g for g in ([k for k in range(n) if has_video[k] is None],
                                  [k for k in range(n) if has_video[k] is not None]) if g]
            logps = [None] * n
            ents = [None] * n
            all_aux = []
            for group in groups:  # Glm4v cannot mix images and videos in one forward
                for s in range(0, len(group), batch_size):
                    rows = group[s:s + batch_size]
                    idx = torch.tensor(rows, device=input_ids.device)
                    ids = input_ids[idx]
                    att = attention_mask[idx]
                    inputs = {"input_ids": ids, "attention_mask": att}
                    if mm_token_type_ids is not None:
                        inputs["mm_token_type_ids"] = mm_token_type_ids[idx]
                    for key, vals in media.items():
                        parts = [vals[k] for k in rows if vals[k] is not None]
                        if parts:
                            inputs[key[3:]] = torch.cat(parts, 0).to(ids.device)
                    if compute_aux_loss:
                        inputs["output_router_logits"] = True
                    labels = ids.masked_fill(att == 0, -100)
                    labels[:, :-logits_to_keep] = -100
                    with self.accelerator.autocast():
                        out = model(**inputs, labels=labels, fused_lm_head=True)
                    for j, k in enumerate(rows):
                        logps[k] = out.log_probs[j, -logits_to_keep:]
                        if compute_entropy:
                            ents[k] = out.entropy[j, -logits_to_keep:]
                    if compute_aux_loss:
                        all_aux.append(out.aux_loss)
            return (torch.stack(logps, 0), torch.stack(ents, 0) if compute_entropy else None,
                    torch.stack(all_aux).mean() if compute_aux_loss else None)

        # ---- checkpoints carry the curriculum
        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            ckpt = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            if ckpt.is_dir():
                self.studio.save_curriculum(ckpt / CURRICULUM_FILE)
                (ckpt / RL_STATE_FILE).write_text(json.dumps({"rollouts_total": self.rollouts_total}),
                                                  encoding="utf-8")

        def create_model_card(self, *a, **kw):  # no hub card in offline run folders
            return None

    return StudioGRPOTrainer


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

    def evaluate(self, model) -> float:
        """Held-out accuracy: one greedy answer per eval prompt (forced answering on)."""
        if not self.evals:
            return float("nan")
        was_training = model.training
        model.eval()
        try:
            encs = [self.encoder(p, key="eval") for p in self.evals]
            rolls = self.generator(model, encs, 1, greedy=True)
            rewards, _ = self.scorer([r.text for r in rolls], self.evals)
        finally:
            model.train(was_training)
        return sum(r >= self.state.config.correct_threshold for r in rewards) / len(rewards)

    def write_rollouts(self, step: int, items) -> None:
        """Append up to ``rollouts_logged_per_step`` rollouts to ``rollouts.jsonl``."""
        n = self.cfg.rollouts_logged_per_step
        if n <= 0:
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
        """Write the curriculum state (+ pending prompts) as JSON."""
        self.state.save(path)


# --------------------------------------------------------------------------- offline grading & gate


def offline_grade(ctx: _RunContext, model, k: int) -> tuple[dict[int, float], float]:
    """k samples per train prompt → (pass rate per prompt idx, format-correct rate).

    RLCS.md step 2. Also gives the format gate its measurement for free.
    """
    G = max(1, k)
    rates: dict[int, float] = {}
    fmt_ok = n = 0
    chunk = max(1, 64 // G)
    for s in range(0, len(ctx.train), chunk):
        prompts = ctx.train[s:s + chunk]
        encs = [ctx.encoder(p, key="train") for p in prompts]
        rolls = ctx.generator(model, encs, G)
        rows = [p for p in prompts for _ in range(G)]
        rewards, fmt = ctx.scorer([r.text for r in rolls], rows)
        for j, p in enumerate(prompts):
            rates[p.idx] = sum(x >= ctx.state.config.correct_threshold for x in rewards[j * G:(j + 1) * G]) / G
        fmt_ok += sum(fmt)
        n += len(fmt)
    return rates, fmt_ok / max(1, n)


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
        rng = random.Random(ctx.cfg.seed + 7)
        sample = rng.sample(ctx.train, min(n_prompts, len(ctx.train)))
        rolls = ctx.generator(model, [ctx.encoder(p, key="train") for p in sample], 1)
        _, fmt = ctx.scorer([r.text for r in rolls], sample)
        rate = sum(fmt) / max(1, len(fmt))
        n = len(sample)
    else:
        n = len(ctx.train)
    ok = rate >= ctx.cfg.format_gate_threshold
    warning = None if ok else (
        f"FORMAT GATE: only {rate:.0%} of sampled completions follow the {ctx.scorer.family.format_hint} "
        f"format (threshold {ctx.cfg.format_gate_threshold:.0%}). RL rewards format failures with 0, so this "
        f"model will barely learn: teach the format first in the SFT tab (`studio sft`), then start RL "
        f"from that adapter (model.adapter)."
    )
    info = {"rate": rate, "threshold": ctx.cfg.format_gate_threshold, "prompts": n, "ok": ok, "warning": warning}
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
        stop_flag: a :class:`studio.engine.train.metrics.StopFlag`; once set, the trainer saves a
            checkpoint and stops at the next step end (graceful stop from the job panel).

    Returns:
        (trainer, checkpoint or None).

    Raises:
        ConfigError / DataError / ModelLoadError with the field or row to fix.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig

    check_trl_version()
    cfg.validate()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    say = logger or _file_logger(run_dir)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise InputError(f"Run {run_dir} has no checkpoint to resume from; start it again instead.")

    train, evals = check_data(cfg, references=reward_fn is None)
    B = cfg.prompts_per_step

    if model is None or processor is None:
        from studio.engine.infer.models import load

        model, processor = load(cfg.model)
    on_cpu = next(model.parameters()).device.type == "cpu"
    from studio.engine.infer import family

    scorer = Scorer(cfg.rewards, reward_fn, family.of(processor, model))
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [processor.tokenizer.eos_token_id])

    state = _make_state(cfg, train)
    ctx = _RunContext(cfg, run_dir, train, evals, processor, scorer, state, eos, say)
    say(f"RL run: {len(train)} train / {len(evals)} eval prompts, reward {scorer.name}, curriculum "
        f"{cfg.curriculum.mode}, B={B} prompts × G={cfg.num_generations}")

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
            p0, fmt_rate = offline_grade(ctx, model, cc.offline_samples)
            say(f"offline grading: {len(p0)} prompts × {cc.offline_samples} samples in "
                f"{time.perf_counter() - t0:.1f}s; mean pass rate {sum(p0.values()) / max(1, len(p0)):.2f}")
        format_gate(ctx, model, cfg.format_gate_prompts, rate=fmt_rate)
        labels = {p.idx: p.difficulty for p in train if p.difficulty is not None}
        state.init_offline(p0, labels)
        ctx.save_curriculum(run_dir / CURRICULUM_FILE)

    ds = Dataset.from_dict({"prompt": [[{"role": "user", "content": p.text}] for p in train],
                            "idx": [p.idx for p in train]})
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
    )
    peft_config = None
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        peft_config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.lora_target, task_type="CAUSAL_LM")
    from studio.engine.train.metrics import MetricsCallback, StopFlagCallback

    callbacks = [MetricsCallback(run_dir)]
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
    """
    run_dir = Path(run_dir)
    trainer, ckpt = build_trainer(cfg, run_dir, model=model, processor=processor, reward_fn=reward_fn,
                                  resume=resume, stop_flag=stop_flag)
    ctx: _RunContext = trainer.studio
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    step = trainer.state.global_step
    if cfg.eval_every and ctx.evals and step > 0:
        # in-loop evaluations run before a step's rollouts, so none sees the final model;
        # its score (the last point of the held-out curve) is measured here, at the final step
        from studio.engine.train.metrics import MetricsWriter

        acc = ctx.evaluate(trainer.accelerator.unwrap_model(trainer.model))
        with MetricsWriter(run_dir) as w:
            w.log(step, kind="eval", **{"eval/accuracy": acc, "eval/rollouts": float(trainer.rollouts_total)})
        ctx.log(f"step {step}: held-out accuracy {acc:.3f} (final)")
    ctx.save_curriculum(run_dir / CURRICULUM_FILE)
    adapter = run_dir / "adapter"
    trainer.model.save_pretrained(str(adapter))
    trainer.processing_class.save_pretrained(str(adapter))
    share_weights(run_dir, recursive=True)  # the adapter and every checkpoint
    summary = {
        "steps": trainer.state.global_step,
        "rollouts": trainer.rollouts_total,
        "seconds": round(time.perf_counter() - t0, 1),
        "stop_reason": trainer.stop_reason,
        "adapter": str(adapter),
    }
    ctx.log(f"done: {json.dumps(summary)}")
    return summary
