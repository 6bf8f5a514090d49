"""RL run settings beside the trainer (TRL's habit): :class:`RLRunConfig`, file names, version checks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from studio.config import ModelSpec, YamlConfig, check
from studio.engine.infer.family import DEFAULT as _GLM41V_FAMILY
from studio.engine.rewards import RewardConfig
from studio.engine.train.curriculum import CurriculumConfig
from studio.errors import ConfigError, StudioError


log = logging.getLogger(__name__)

#: TRL versions whose private methods the overrides below were written and tested against.
TRL_RANGE = ("1.16", "1.17")
#: LoRA on the language model only: attention and MLP linears under ``language_model``
#: (FACTS.md: plain names would also hit the vision tower).
LM_LORA_REGEX = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate_up_proj|down_proj))"
#: Text injected when the thinking budget runs out (GLM's benchmark script does the same).

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
        name: short run name for the run folder (``<time>-rl-<name>``); default: the
            prompt or recipe file's name.
        model: base model; ``model.adapter`` continues from an SFT adapter.
        data: prompt file or folder (JSONL/JSON/CSV/Parquet, ``save_to_disk``; rows with a
            prompt — ``prompt``/``question``/``problem``/``messages`` — a reference —
            ``answer``/``solution``/``ground_truth``/``reward_model.ground_truth`` — media
            in ``images``/``videos``, optional ``task_type`` and ``difficulty``; see
            :mod:`studio.engine.train.data.readers.rl_rows`). Relative media paths are
            relative to the file.
        dataset_info / dataset: a LLaMA-Factory ``dataset_info.json`` and the entry to read
            (``data`` may then be empty: the entry's ``file_name``).
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

    name: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    data: str = ""
    dataset_info: str = ""
    dataset: str = ""
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
        if not self.data and not self.dataset_info:
            raise ConfigError("`data` is empty: pick a prompt file (JSONL), e.g. sample_data/rl/prompts.jsonl.")


# --------------------------------------------------------------------------- rewards


def reward_names() -> list[str]:
    """Names in the reward registry (:data:`studio.engine.rewards.REGISTRY`)."""
    from studio.engine import rewards

    return list(rewards.REGISTRY)
