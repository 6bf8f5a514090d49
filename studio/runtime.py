"""Process-wide quiet defaults for the ``studio`` entry points (CLI, Space ``app.py``).

Two libraries we do not own print lines a user did not ask for:

* ``import peft`` imports **bitsandbytes** whenever it is installed, and bitsandbytes'
  CPU backend then logs "Failed to load CPU gemm_4bit_forward from kernels-community …"
  on AVX512-BF16 CPUs — on every run, though 4-bit is only ever used on CUDA here.
  :func:`defer_bitsandbytes` makes ``import bitsandbytes`` fail (and
  ``importlib.util.find_spec`` answer None, which is how peft and transformers ask) until
  :func:`allow_bitsandbytes` is called by the code paths that load NF4 weights
  (``models.load`` with ``load_in_4bit``, QLoRA in ``sft``).
* peft and TRL read ``model.is_gradient_checkpointing``, which transformers 5.x marks
  deprecated (FutureWarning on every SFT/RL run). Our own code uses the current names
  (``activation_checkpointing``); :func:`quiet_library_warnings` filters exactly that one
  message and nothing else.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

_BNB = "bitsandbytes"


def defer_bitsandbytes() -> bool:
    """Keep bitsandbytes unimported until :func:`allow_bitsandbytes`.

    Returns:
        True if the block is in place, False when bitsandbytes was already imported
        (then nothing changes).
    """
    if _BNB in sys.modules:
        return sys.modules[_BNB] is None
    sys.modules[_BNB] = None  # type: ignore[assignment]  # import → ImportError, find_spec → None
    return True


def allow_bitsandbytes() -> bool:
    """Lift :func:`defer_bitsandbytes` so NF4 loading can import bitsandbytes.

    Returns:
        True if bitsandbytes is installed (importable now).
    """
    if _BNB in sys.modules and sys.modules[_BNB] is None:
        del sys.modules[_BNB]
    return importlib.util.find_spec(_BNB) is not None


def quiet_library_warnings() -> None:
    """Filter the deprecation warnings raised inside peft/TRL for transformers' renamed
    ``is_gradient_checkpointing`` attribute (not ours; our code uses the new names)."""
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def quiet_defaults() -> None:
    """Both of the above: what every ``studio`` entry point calls first."""
    defer_bitsandbytes()
    quiet_library_warnings()
