"""Reward functions with TRL's signature, and the registry by name.

``fn(completions: list[str], **kwargs) -> list[float]``: the format gate
(:func:`~studio.engine.rewards.format.check_format`), then the row's verifier
(:func:`~studio.engine.rewards.verify.verify`). TRL passes every dataset column as a kwarg.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from studio.engine.infer.reasoning import BOX_CLOSE, BOX_OPEN
from studio.engine.rewards import sandbox
from studio.engine.rewards.config import DEFAULTS as _DEFAULTS
from studio.engine.rewards.config import RewardConfig
from studio.engine.rewards.format import check_format, completion_text, require_box_for
from studio.engine.rewards.verify import verify
from studio.errors import ConfigError, DataError

RewardFn = Callable[..., list[float]]

def _column(kwargs: dict, name: str, n: int, default: Any = None) -> list:
    v = kwargs.get(name, default)
    if isinstance(v, (list, tuple)) and not (name == "image_size" and len(v) == 2
                                             and all(isinstance(x, (int, float)) for x in v)):
        if len(v) != n:
            raise DataError(f"Column `{name}` has {len(v)} values for {n} completions.")
        return list(v)
    return [v] * n


def _split(kwargs: dict) -> tuple[dict, dict]:
    settings = {k: kwargs[k] for k in _DEFAULTS if k in kwargs}
    return {**_DEFAULTS, **settings}, kwargs


def _score(completions: Sequence[Any], forced_task: str | None, kwargs: dict) -> list[float]:
    cfg, cols = _split(kwargs)
    n = len(completions)
    if "answer" not in cols:
        raise DataError("The dataset has no `answer` column: every RL prompt needs a reference answer.")
    answers = _column(cols, "answer", n)
    types = [forced_task] * n if forced_task else _column(cols, "task_type", n)
    sizes = _column(cols, "image_size", n)
    need_box = require_box_for(cfg["extract"], cfg["require_box"])
    out = []
    for c, ref, tt, size in zip(completions, answers, types, sizes):
        fc = check_format(completion_text(c), require_box=need_box)
        if not fc.ok:
            out.append(0.0)
            continue
        pred = fc.boxed[0] if fc.boxed else (fc.answer if cfg["extract"] == "box_or_answer" else None)
        tt = tt if tt not in (None, "") else cfg["default_task_type"]  # "auto": from the reference
        score = verify(pred, ref, tt, image_size=size, **cfg) if pred is not None else 0.0
        out.append(float(score) + float(cfg["format_bonus"]))
    return out


def accuracy(completions: list, **kwargs: Any) -> list[float]:
    """Main reward: format gate, then the verifier named by each row's ``task_type``.

    >>> c = ["<think>half</think><answer><|begin_of_box|>\\\\frac{1}{2}<|end_of_box|></answer>",
    ...      "<think>hmm</think><answer><|begin_of_box|>B<|end_of_box|></answer>",
    ...      "<|begin_of_box|>0.5<|end_of_box|>"]
    >>> accuracy(c, answer=["0.5", "(B)", "0.5"], task_type=["math", "choice", "math"])
    [1.0, 1.0, 0.0]
    """
    return _score(completions, None, kwargs)


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 when the format is right (see :func:`check_format`), else 0.0. For logging.

    >>> format_reward(["<think>a</think><answer><|begin_of_box|>1<|end_of_box|></answer>",
    ...                "<think>a</think><answer>1</answer>"])
    [1.0, 0.0]
    >>> format_reward(["<think>a</think><answer>1</answer>"], extract="box_or_answer")
    [1.0]
    """
    cfg, _ = _split(kwargs)
    need_box = require_box_for(cfg["extract"], cfg["require_box"])
    return [float(check_format(completion_text(c), require_box=need_box).ok) for c in completions]


def _wrap(body: str) -> str:
    return f"<think>t</think><answer>{BOX_OPEN}{body}{BOX_CLOSE}</answer>"


def math_reward(completions: list, **kwargs: Any) -> list[float]:
    """Exact/normalised → numeric (``rel_tol``) → SymPy, for every row.

    >>> math_reward([_wrap("2\\\\sqrt{2}"), _wrap("2.83")], answer="\\\\sqrt{8}")
    [1.0, 0.0]
    """
    return _score(completions, "math", kwargs)


def numeric_reward(completions: list, **kwargs: Any) -> list[float]:
    """Like ``math``; the data doctor additionally requires numeric references.

    >>> numeric_reward([_wrap("1,000"), _wrap("999.9")], answer="1000")
    [1.0, 0.0]
    """
    return _score(completions, "numeric", kwargs)


def exact_reward(completions: list, **kwargs: Any) -> list[float]:
    """Normalised string equality (case, spaces, punctuation, ``\\text{}`` ignored).

    >>> exact_reward([_wrap("\\\\text{Paris.}"), _wrap("Lyon")], answer="paris")
    [1.0, 0.0]
    """
    return _score(completions, "exact", kwargs)


def choice_reward(completions: list, **kwargs: Any) -> list[float]:
    """Multiple-choice letter.

    >>> choice_reward([_wrap("(C)"), _wrap("C or D")], answer="C")
    [1.0, 0.0]
    """
    return _score(completions, "choice", kwargs)


def counting_reward(completions: list, **kwargs: Any) -> list[float]:
    """Integer count (digits or number words).

    >>> counting_reward([_wrap("seven"), _wrap("7 or 8")], answer="7")
    [1.0, 0.0]
    """
    return _score(completions, "counting", kwargs)


def ocr_reward(completions: list, **kwargs: Any) -> list[float]:
    """1 − normalised edit distance.

    >>> ocr_reward([_wrap("Hello World"), _wrap("Hellp World")], answer="hello world")
    [1.0, 0.9090909090909091]
    """
    return _score(completions, "ocr", kwargs)


def grounding_reward(completions: list, **kwargs: Any) -> list[float]:
    """IoU with the reference box(es), 0–1000 scale (or 1/0 at ``iou_threshold``).

    >>> grounding_reward([_wrap("[0,0,100,100]"), _wrap("[50,0,150,100]")], answer="[0,0,100,100]")
    [1.0, 0.3333333333333333]
    >>> grounding_reward([_wrap("[50,0,150,100]")], answer="[0,0,100,100]", iou_threshold=0.3)
    [1.0]
    """
    return _score(completions, "grounding", kwargs)


#: Reward functions by name (TRL signature).
REGISTRY: dict[str, RewardFn] = {
    "accuracy": accuracy,
    "format": format_reward,
    "math": math_reward,
    "numeric": numeric_reward,
    "exact": exact_reward,
    "choice": choice_reward,
    "counting": counting_reward,
    "ocr": ocr_reward,
    "grounding": grounding_reward,
}


def get_reward(name: str, **settings: Any) -> RewardFn:
    """The reward function registered as ``name``, with ``settings`` bound.

    The returned function keeps TRL's signature and has ``__name__ == name`` (TRL logs
    ``rewards/<name>/mean``). Settings given at call time override bound ones.

    Raises:
        ConfigError: unknown name (the message lists the valid names) or setting.

    >>> get_reward("format").__name__
    'format'
    >>> get_reward("acuracy")
    Traceback (most recent call last):
    ...
    studio.errors.ConfigError: Unknown reward function 'acuracy'; valid names: accuracy, format, math, numeric, exact, choice, counting, ocr, grounding.
    """
    if name not in REGISTRY:
        raise ConfigError(f"Unknown reward function {name!r}; valid names: {', '.join(REGISTRY)}.")
    unknown = sorted(set(settings) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"Unknown reward setting(s) {', '.join(unknown)}; valid: {', '.join(_DEFAULTS)}.")
    base = REGISTRY[name]
    if not settings:
        fn = functools.wraps(base)(lambda completions, **kw: base(completions, **kw))
    else:
        def fn(completions: list, **kwargs: Any) -> list[float]:
            return base(completions, **{**settings, **kwargs})
        functools.update_wrapper(fn, base)
    fn.__name__ = fn.__qualname__ = name
    return fn


def warm_up() -> bool:
    """Pay the one-off costs now rather than inside a training step: start the SymPy
    worker process (about 1–2 s; it exercises SymPy's lazily imported paths) and import
    SciPy's assignment solver (grounding). Returns True when the worker is ready."""
    try:
        from scipy.optimize import linear_sum_assignment  # noqa: F401
    except ImportError:
        pass
    return sandbox.warm_up()


def build_reward_funcs(cfg: RewardConfig) -> list[RewardFn]:
    """One bound function per name in ``cfg.functions`` (validates ``cfg`` first).

    >>> [f.__name__ for f in build_reward_funcs(RewardConfig(functions=["accuracy", "format"]))]
    ['accuracy', 'format']
    """
    cfg.validate()
    # start the SymPy worker now, in the background, so the first training step does not wait
    threading.Thread(target=warm_up, daemon=True, name="rewards-warm-up").start()
    return [get_reward(n, **cfg.settings()) for n in cfg.functions]
