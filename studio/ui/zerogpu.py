"""ZeroGPU support for Hugging Face Spaces, and nothing at all elsewhere.

On a ZeroGPU Space the ``spaces`` package is installed and a GPU is attached only
while a function decorated with ``spaces.GPU`` runs, for at most its ``duration``
seconds. A fixed large duration wastes the visitor's quota and queues everyone else, so
the duration here is computed from the request: prompt prefill plus
``max_new_tokens`` per side at a conservative decode rate.

Without the ``spaces`` package :func:`gpu` returns the function unchanged.

Callers: the Chat tab's send and regenerate (:func:`studio.ui.tabs.chat.duration_of_send`)
and the Compare tab's comparison (two sides: main and base caps).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from typing import Any, Callable

#: Conservative decode rate of GLM-4.1V-9B in bf16 on a ZeroGPU slice (tokens/s).
DECODE_TOKENS_PER_S = 20.0
#: Fixed cost per request: moving weights on, vision encoder, prefill (seconds).
OVERHEAD_S = 15.0
#: ZeroGPU's own ceiling for one call (seconds).
MAX_DURATION_S = 300


def estimate_seconds(max_new_tokens: int, sides: int = 1,
                     tokens_per_s: float = DECODE_TOKENS_PER_S) -> int:
    """GPU seconds to ask ZeroGPU for: overhead + sides × tokens ÷ rate, capped.

    >>> estimate_seconds(256) < estimate_seconds(2048) <= MAX_DURATION_S
    True
    >>> estimate_seconds(512, sides=2) > estimate_seconds(512, sides=1)
    True
    """
    sec = OVERHEAD_S + sides * max(1, int(max_new_tokens)) / tokens_per_s
    return int(min(MAX_DURATION_S, math.ceil(sec)))


def spaces_module():
    """The ``spaces`` module if importable, else None."""
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


def gpu(fn: Callable[..., Any], duration: Callable[..., int]) -> Callable[..., Any]:
    """Wrap ``fn`` with ``spaces.GPU(duration=duration)`` when ``spaces`` exists.

    Args:
        fn: a gradio handler (plain function or generator function).
        duration: called with the handler's own arguments, returns seconds
            (e.g. ``lambda msg, hist, gen, *a: estimate_seconds(gen.max_new_tokens)``).

    Returns ``fn`` itself when the package is missing, so local runs change nothing.
    """
    spaces = spaces_module()
    if spaces is None:
        return fn
    wrapped = spaces.GPU(duration=duration)(fn)
    if inspect.isgeneratorfunction(fn) and not inspect.isgeneratorfunction(wrapped):
        # gradio streams a handler only when it *is* a generator function
        inner = wrapped

        def wrapped(*args, **kwargs):  # type: ignore[no-redef]
            yield from inner(*args, **kwargs)

    functools.update_wrapper(wrapped, fn)  # gradio reads the signature (gr.Request) through __wrapped__
    wrapped.__studio_zerogpu__ = True  # type: ignore[attr-defined]
    return wrapped
