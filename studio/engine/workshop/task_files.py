"""Task files: scenes exported as GLM-4.1V fine-tune JSONL (SFT) and prompt JSONL (RL / evaluation), and
read back (:func:`load_task_rows`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

from studio.engine.workshop.drawing import render
from studio.engine.workshop.tasks import FAMILIES, LEVELS, Scene, TaskItem, generate


def assistant_text(item: TaskItem) -> str:
    """GLM-4.1V-Thinking target: ``<think>trace</think><answer><|begin_of_box|>ans<|end_of_box|></answer>``."""
    return (f"<think>{item.trace}</think><answer><|begin_of_box|>{item.answer}"
            f"<|end_of_box|></answer>")


def _save_images(scenes: Sequence[Scene], out: Path, image_dir: str) -> dict[str, str]:
    (out / image_dir).mkdir(parents=True, exist_ok=True)
    rel = {}
    for s in scenes:
        img = s.image if s.image is not None else render(s.description)
        path = f"{image_dir}/{s.image_id}.png"
        img.save(out / path, format="PNG", optimize=False)
        rel[s.image_id] = path
    return rel


def _write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def export_sft(scenes: Sequence[Scene], path: str | Path, *, image_dir: str = "images",
               multi_turn: bool = True) -> int:
    """Write a GLM-4.1V fine-tune JSONL (+ PNGs in ``image_dir`` beside it).

    Row format: ``{"messages": [{"role": "user", "content": "<image>Q"}, {"role":
    "assistant", "content": "<think>…</think><answer><|begin_of_box|>A<|end_of_box|></answer>"},
    …], "images": ["images/<id>.png"]}``. With ``multi_turn`` every question about an image
    is one more user/assistant pair in the same chat (one row per image); otherwise one
    row per question. Image paths are relative to the JSONL file. Returns rows written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rel = _save_images(scenes, path.parent, image_dir)

    def rows():
        for s in scenes:
            groups = [s.items] if multi_turn else [[it] for it in s.items]
            for items in groups:
                msgs = []
                for k, it in enumerate(items):
                    msgs.append({"role": "user", "content": ("<image>" if k == 0 else "") + it.question})
                    msgs.append({"role": "assistant", "content": assistant_text(it)})
                yield {"messages": msgs, "images": [rel[s.image_id]]}

    return _write_jsonl(path, rows())


def rl_row(item: TaskItem, image_path: str) -> dict:
    """One RL / eval prompt row (see :func:`export_rl`)."""
    return {"id": item.id, "prompt": "<image>" + item.question, "images": [image_path],
            "answer": item.answer, "task_type": item.task_type, "difficulty": item.difficulty,
            "family": item.family, "choices": item.choices, "trace": item.trace, "scene": item.scene}


def export_rl(scenes: Sequence[Scene], path: str | Path, *, image_dir: str = "images") -> int:
    """Write an RL prompt JSONL (+ PNGs), one row per question.

    Row: ``{"id", "prompt": "<image>Q", "images": ["images/<id>.png"], "answer", "task_type",
    "difficulty" (1..3), "family", "choices", "trace", "scene"}``. Returns rows written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rel = _save_images(scenes, path.parent, image_dir)
    return _write_jsonl(path, (rl_row(it, rel[s.image_id]) for s in scenes for it in s.items))


def load_task_rows(path: str | Path) -> list[dict]:
    """Read an RL/eval prompt JSONL written by :func:`export_rl`; image paths made absolute.

    Raises:
        InputError: missing file, bad JSON, or a row without prompt/answer/images.
    """
    from studio.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"Task file {str(p)!r} does not exist; create one with `studio tasks --out DIR`.")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError as e:
            raise DataError(f"{p}: line {n} is not valid JSON ({e}).") from None
        prompt = r.get("prompt")
        if isinstance(prompt, list):  # messages: take the last user text
            prompt = next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), None)
        if not isinstance(prompt, str) or "answer" not in r:
            raise DataError(f"{p}: line {n} needs a string `prompt` (or messages) and an `answer`.")
        r["prompt"] = prompt
        r["images"] = [str((p.parent / im).resolve()) for im in r.get("images", [])]
        r.setdefault("family", "all")
        r.setdefault("difficulty", 0)
        r.setdefault("task_type", "exact")
        rows.append(r)
    if not rows:
        raise DataError(f"{p} has no rows.")
    return rows


def write_dataset(out: str | Path, n: int, seed: int = 0, families: Sequence[str] = FAMILIES,
                  levels: Sequence[int] = LEVELS, *, eval_n: int = 0, eval_seed: int | None = None,
                  questions: str | None = None) -> dict:
    """Write ``sft.jsonl``, ``rl.jsonl`` (and ``eval.jsonl`` when ``eval_n``) into ``out``.

    SFT and RL files hold the same ``n`` questions (SFT: one multi-turn chat per image);
    the eval file is drawn from ``eval_seed`` (default ``seed + 1000``) with scenes whose
    content also occurs in the training scenes removed; ``questions`` (a regular expression)
    keeps only the questions it matches, in every file. Returns counts per file.
    """
    out = Path(out)
    scenes = generate(n, seed, families, levels, questions=questions)
    counts = {"sft.jsonl": export_sft(scenes, out / "sft.jsonl"),
              "rl.jsonl": export_rl(scenes, out / "rl.jsonl")}
    if eval_n:
        seen = {s.key() for s in scenes}
        es = [s for s in generate(eval_n * 2, seed + 1000 if eval_seed is None else eval_seed,
                                  families, levels, questions_per_image=1, questions=questions)
              if s.key() not in seen]
        counts["eval.jsonl"] = export_rl(es[:eval_n], out / "eval.jsonl")
    return counts


def item_dict(item: TaskItem) -> dict:
    """Plain dict of a :class:`TaskItem` (JSON-serialisable)."""
    return asdict(item)
