"""Training files for the workshop recipes, written by ``studio tasks`` code on first use.

The thinking-SFT recipe (``sample_data/workshop/sft.yaml``) teaches toy-base the
``<think>…</think><answer><|begin_of_box|>…<|end_of_box|></answer>`` format through the
product's own SFT (``studio sft``). Its data is the same distribution the workshop model's
own trainer used (:mod:`studio.engine.workshop.toy_train`, stage ``thinking``): fresh scenes of every
family, levels from easy to an even mix, "How many <colour> <shape>s?" asked about every
shapes-kind scene (a third in the short form people type in Chat), up to
``max_questions`` questions per image as one multi-turn chat, and **no scene whose content
is in the held-out pool** (:func:`studio.engine.workshop.toy_train.eval_keys`: the eval files and
the Chat-tab check). Images are PNGs beside the JSONL (paths relative to it), so the data
doctor, the collator and every other tool read it like any user dataset.

The held-out file (``eval.jsonl``) is the README's: ``studio tasks --n 12 --eval-n N``
(held-out seed ``seed + 1000``), one question per scene.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from studio.engine.workshop import task_files
from studio.errors import InputError, StoppedError


def write_thinking_sft(out: str | Path, scenes: int = 12000, seed: int = 0, max_questions: int = 4,
                       eval_n: int = 480, batch: int = 12, stop=None, progress=None) -> dict[str, int]:
    """Write ``sft.jsonl`` (+ ``images/``) and ``heldout/eval.jsonl`` into ``out``.

    Args:
        out: folder (created).
        scenes: training images (one multi-turn chat row each).
        seed: training seed; held-out scenes come from ``seed + 1000``'s pool and are skipped.
        max_questions: questions (user/assistant pairs) per row.
        eval_n: held-out prompts in ``heldout/eval.jsonl`` (0: none).
        batch: scenes per curriculum step (as ``toy_train``'s batch; only sets how fast the
            level mix moves from easy to even along the file).
        stop: anything with ``is_set()`` (a ``threading.Event``, the training StopFlag);
            checked before every scene, so Stop ends the generation within one scene's time
            (milliseconds).
        progress: called with (scenes written, ``scenes``) after every scene (None: nothing).

    Returns:
        Rows written per file, e.g. ``{"sft.jsonl": 12000, "heldout/eval.jsonl": 480}``.

    Raises:
        InputError: ``scenes < 1`` or ``max_questions < 1``.
        StoppedError: ``stop`` was set; nothing of this call is kept (the partial
            ``sft.jsonl`` and the images written so far are removed, and ``out`` itself
            when this call made it), so the next start generates the data again.
    """
    from studio.engine.workshop.toy_train import SceneStream, eval_keys, question_text

    if scenes < 1 or max_questions < 1:
        raise InputError("`tasks.scenes` and `tasks.max_questions` must be at least 1.")
    out = Path(out)
    made = [d for d in (*reversed(out.parents), out, out / "images") if not d.exists()]  # outermost first
    (out / "images").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    stream = SceneStream(seed, batch, eval_keys(seed))
    steps = math.ceil(scenes / batch)
    rows = 0
    tmp = out / "sft.jsonl.tmp"
    stopped = False
    with tmp.open("w", encoding="utf-8") as f:
        for k in range(steps):
            for s in stream.scenes(k, k / max(1, steps - 1))[: scenes - rows]:
                if stop is not None and stop.is_set():
                    stopped = True
                    break
                name = f"images/{s.image_id}.png"
                written.append(out / name)
                s.image.save(out / name)
                msgs = []
                for q, it in enumerate(s.items[:max_questions]):
                    msgs.append({"role": "user", "content": ("<image>" if q == 0 else "") + question_text(it, "thinking")})
                    msgs.append({"role": "assistant", "content": task_files.assistant_text(it)})
                f.write(json.dumps({"messages": msgs, "images": [name]}, ensure_ascii=False) + "\n")
                rows += 1
                if progress is not None:
                    progress(rows, scenes)
            if stopped:
                break
    if stopped or (eval_n and stop is not None and stop.is_set()):
        _remove_partial(tmp, written, made)
        raise StoppedError(f"Stopped while generating the recipe's data ({rows} of {scenes} scenes); "
                           "nothing was kept. Start again to generate it.")
    counts = {"sft.jsonl": rows}
    if eval_n:
        held = task_files.write_dataset(out / "heldout", 12, seed, eval_n=eval_n)
        counts["heldout/eval.jsonl"] = held["eval.jsonl"]
    tmp.replace(out / "sft.jsonl")  # last: its presence means the whole recipe data is there
    return counts


def _remove_partial(tmp: Path, written: list[Path], made: list[Path]) -> None:
    """Delete what a stopped generation wrote: the partial JSONL, its images, and the folders
    it made (when empty: a folder that was there before keeps what it held)."""
    for f in (tmp, *written):
        f.unlink(missing_ok=True)
    for d in reversed(made):
        try:
            d.rmdir()
        except OSError:
            pass


#: Generators a recipe's ``tasks:`` block may name with ``kind`` (default ``thinking-sft``).
KINDS = {"thinking-sft": write_thinking_sft}


def write_recipe_data(out: str | Path, kind: str = "thinking-sft", stop=None, progress=None,
                      **spec) -> dict[str, int]:
    """Run the generator ``kind`` of :data:`KINDS` with ``spec`` into ``out``; ``stop``
    (anything with ``is_set()``) ends it early; ``progress(done, total)`` hears of every scene.

    Raises:
        InputError: unknown kind or argument.
        StoppedError: ``stop`` was set before the data was complete.
    """
    if kind not in KINDS:
        raise InputError(f"`tasks.kind` must be one of {', '.join(KINDS)}, got {kind!r}.")
    try:
        return KINDS[kind](out, stop=stop, progress=progress, **spec)
    except TypeError as e:
        raise InputError(f"`tasks` has an argument {kind!r} does not take: {e}") from None

