"""GRPO with curriculum sampling (RLCS) for GLM-4.1V, on TRL's ``GRPOTrainer``.

Laid out in TRL's habit, the config beside the trainer: :mod:`.config` (``RLRunConfig``,
file names, version checks), :mod:`.prompts` (prompt file, checks, encoding),
:mod:`.rollouts` (generation, scoring, the curriculum sampler), :mod:`.trainer`
(``StudioGRPOTrainer``) and :mod:`.run` (format gate, building, training). Everything
is importable from ``studio.engine.train.rl`` as before.

What this module adds to TRL, and why (see docs/RLCS.md for the algorithm and
docs/FACTS.md for the measured TRL behaviour):

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
  per step; held-out accuracy as ``eval`` lines at the step of the model it scored: 0 before
  training, every ``eval_every`` steps, and the last step), ``train.log``, ``rollouts.jsonl``
  (numbered like ``metrics.jsonl``, with the same ``resume`` lines), ``checkpoints/`` (each
  with ``curriculum.json``), ``adapter/``.

Tested against TRL ``>=1.16,<1.17`` (:data:`TRL_RANGE`); the overrides rely on private
methods of that range and :func:`check_trl_version` refuses others.
"""

# The package's API, as when rl was one module:
from studio.engine.train.rl.config import (  # noqa: F401
    CURRICULUM_FILE,
    FORCE_TEXT,
    FORMAT_GATE_FILE,
    LM_LORA_REGEX,
    RLRunConfig,
    RL_STATE_FILE,
    ROLLOUTS_FILE,
    STOP_REASON_FILE,
    TRL_RANGE,
    check_trl_version,
    reward_names,
    vllm_available,
)
from studio.engine.train.rl.prompts import (  # noqa: F401
    PromptEncoder,
    RLPrompt,
    check_data,
    check_references,
    collate,
    load_prompts,
    media_groups,
    split_eval,
)
from studio.engine.train.rl.rollouts import (  # noqa: F401
    CurriculumSampler,
    PromptDrawer,
    Rollout,
    RolloutGenerator,
    Scorer,
    trl_reward,
)
from studio.engine.train.rl.run import (  # noqa: F401
    FormatGateError,
    build_trainer,
    format_gate,
    grpo_config,
    latest_checkpoint,
    offline_grade,
    train,
)
