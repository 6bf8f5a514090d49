"""Verifiable rewards for GRPO on GLM-4.1V-Thinking outputs.

Follows the GLM-4.1V-Thinking report (arXiv 2507.01006, §5) and its public reward code
(``glmv_reward``): only the ``<|begin_of_box|>…<|end_of_box|>`` span inside ``<answer>``
is compared with the reference; any format failure scores the minimum, 0. Each task type
has an explicit answer grammar and says which comparison applies (table in
:mod:`~studio.engine.rewards.verify`). Designed so that a policy cannot game it: every
wrong answer scores 0, every right one 1, nothing hangs. Where we differ from GLM's code,
Math-Verify or TRL on purpose, the module that does it says why:

* :mod:`.format` — the one format judge (RL reward, ``studio eval``, data doctor);
* :mod:`.text` — normal forms that never drop a sign, decimal point, operator or bracket;
  superscripts and ``½`` survive NFKC;
* :mod:`.numeric` — the number grammar (%, °, units, ``\\times 10^{n}``, Chinese numerals);
  non-finite ≠ finite, integers exactly, relative tolerance with floor 1e-12;
* :mod:`.math_expr` — prose is never algebra; expressions/sets/intervals by SymPy;
* :mod:`.sandbox` — SymPy in a killable worker process: time limits hold in any thread;
* :mod:`.choice`, :mod:`.ocr` (bit-parallel edit distance, length caps), :mod:`.grounding`;
* :mod:`.verify` — :func:`verify`, :func:`infer_task_type`, :func:`check_reference`;
* :mod:`.registry` — the reward functions and :data:`REGISTRY`.

Stable API (``studio/engine/train/rl/``, the RL tab, ``studio eval`` and the data doctor build on it)
-----------------------------------------------------------------------------------------------
Reward functions — TRL's signature ``fn(completions: list[str], **kwargs) -> list[float]``:

* ``completions``: decoded **with special tokens kept** (a trailing ``<|user|>`` /
  ``<|endoftext|>`` and padding are fine); conversational completions
  (``[{"role": "assistant", "content": ...}]``) are accepted too.
* dataset columns arrive as kwargs, one value per completion (a scalar is broadcast):
  ``answer`` (reference, required by the verifiers), ``task_type`` (see
  :data:`TASK_TYPES`; missing/empty → ``default_task_type``, by default ``"auto"``:
  inferred from the reference), ``image_size`` (``[w, h]``, grounding only, used when
  references are in pixels). Unknown kwargs (``prompts``, ``completion_ids``,
  ``trainer_state``, …) are ignored.
* settings are kwargs too (the names of :class:`RewardConfig`'s fields); bind them with
  :func:`get_reward` / :func:`build_reward_funcs`.

=================  ==============================================================
``REGISTRY`` name  reward
=================  ==============================================================
``accuracy``       picks the verifier from ``task_type`` per row (the main reward)
``format``         1.0 if the format is right, else 0.0 (for logging)
``math``           number grammar → prose as text → SymPy (expressions, sets…)
``numeric``        same as ``math``; the doctor requires a finite number reference
``exact``          normalised string equality only
``choice``         multiple-choice letter (``"(B)"``, ``"B."``, ``"\\(b\\)"`` → ``B``)
``counting``       integer compare (digits, words "three", Chinese numerals)
``ocr``            1 − normalised edit distance, in [0, 1]
``grounding``      IoU of ``[x1,y1,x2,y2]`` boxes (0–1000 scale), or 1/0 at a threshold
=================  ==============================================================

Reward-hacking guards: the box must sit inside ``<answer>`` and be the only one; SymPy
parses the *whole* box (no free-text extraction, so "3, 4, 5" is a set, not 5); choice
and counting refuse answers naming several options/numbers; grounding divides by
max(#predicted, #reference) boxes; expressions that would make SymPy compute huge
integers are refused before parsing; lengths are capped everywhere.

All scores are floats; a format failure is 0.0 and a correct answer is 1.0 (plus
``format_bonus``, 0.0 by default, for any completion with a correct format).
"""

from __future__ import annotations

from studio.engine.rewards.choice import parse_choice, parse_count
from studio.engine.rewards.config import (
    AUTO,
    EXTRACT_MODES,
    REL_TOL_FLOOR,
    TASK_ALIASES,
    TASK_TYPES,
    RewardConfig,
    canonical_task_type,
)
from studio.engine.rewards.format import (
    FormatCheck,
    check_format,
    completion_text,
    extract_answer,
    reference_text,
    require_box_for,
)
from studio.engine.rewards.grounding import MAX_BOXES, box_iou, grounding_score
from studio.engine.rewards.math_expr import math_equal, safe_for_sympy
from studio.engine.rewards.numeric import Quantity, numbers_equal, parse_number, parse_quantity
from studio.engine.rewards.ocr import MAX_OCR_CHARS, edit_distance, edit_similarity
from studio.engine.rewards.registry import (
    REGISTRY,
    RewardFn,
    accuracy,
    build_reward_funcs,
    choice_reward,
    counting_reward,
    exact_reward,
    format_reward,
    get_reward,
    grounding_reward,
    math_reward,
    numeric_reward,
    ocr_reward,
    warm_up,
)
from studio.engine.rewards import sandbox
from studio.engine.rewards.text import normalize_text
from studio.engine.rewards.verify import (
    check_reference,
    infer_task_type,
    resolve_task_type,
    row_task_type,
    verify,
)

__all__ = [
    "AUTO", "EXTRACT_MODES", "MAX_BOXES", "MAX_OCR_CHARS", "REGISTRY", "REL_TOL_FLOOR", "TASK_ALIASES",
    "TASK_TYPES", "FormatCheck", "Quantity", "RewardConfig", "RewardFn", "accuracy", "box_iou",
    "build_reward_funcs", "canonical_task_type", "check_format", "check_reference", "choice_reward",
    "completion_text", "counting_reward", "edit_distance", "edit_similarity", "exact_reward",
    "extract_answer", "format_reward", "get_reward", "grounding_reward", "grounding_score",
    "infer_task_type", "math_equal", "math_reward", "normalize_text", "numbers_equal", "numeric_reward",
    "ocr_reward", "parse_choice", "parse_count", "parse_number", "parse_quantity", "reference_text",
    "require_box_for", "resolve_task_type", "row_task_type", "safe_for_sympy", "verify", "warm_up",
]
