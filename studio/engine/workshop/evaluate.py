"""Score a model folder on a task file: format-correct rate and accuracy per family × level.

Each prompt is rendered with the model's own chat template (one user turn: the image,
then the question), generated greedily by default, decoded *with* special tokens and
parsed by :func:`studio.engine.infer.reasoning.parse`. Two scoring modes:

* ``thinking`` — the GLM-4.1V-Thinking contract (arXiv 2507.01006 §4): the output must
  be ``<think>…</think><answer>…</answer>`` with exactly one
  ``<|begin_of_box|>…<|end_of_box|>`` span, and only the boxed text is compared with the
  answer; a format failure scores 0 (as the RL reward does).
* ``plain`` — a Base-style model: no format is expected; the first line of the answer
  text is compared.

``auto`` picks ``plain`` for folders whose ``studio_model.json`` says ``"stage": "base"``
and ``thinking`` otherwise. Answers are checked by the RL reward's verifiers
(:mod:`studio.engine.rewards`: counting, numeric/math, exact, choice, OCR, grounding), so
``studio eval`` scores any RL prompt file the way the reward does.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from studio.engine.infer.reasoning import parse
from studio.errors import InputError

def verify(pred: str, answer: str, task_type: str, choices: Sequence[str] | None = None) -> bool:
    """True if ``pred`` is a correct answer, by the same verifiers as the RL reward
    (:func:`studio.engine.rewards.verify`; a word among ``choices`` is scored as
    ``exact``, :func:`studio.engine.rewards.row_task_type`). Partial credit (OCR edit
    similarity, grounding IoU below 1) does not count as correct.

    >>> verify("2", "2", "count"), verify("3 or 2", "2", "count")
    (True, False)
    >>> verify("red circle", "red circle", "choice", ["red circle", "blue square"])
    True
    >>> verify("35.0", "35", "numeric")
    True

    Raises:
        DataError: unknown task type.
    """
    from studio.engine import rewards

    return rewards.verify(pred, answer, rewards.row_task_type(task_type, answer, list(choices or []) or None)) >= 1.0


def format_ok(text: str) -> bool:
    """GLM-4.1V-Thinking format with exactly one box — the RL reward's own judge,
    :func:`studio.engine.rewards.check_format` (no text before ``<think>`` or after
    ``</answer>``, no box in the thinking, no nested tags), so that ``studio eval`` never
    counts as well-formed what the reward scores 0.

    >>> format_ok("<think>a</think><answer><|begin_of_box|>4<|end_of_box|></answer>"), format_ok("<answer>4</answer>")
    (True, False)
    """
    from studio.engine.rewards import check_format

    return check_format(text, require_box=True).ok


@dataclass
class Result:
    """One scored prompt."""

    id: str
    family: str
    difficulty: int
    answer: str
    output: str
    prediction: str
    format_ok: bool
    correct: bool
    chance: float


@dataclass
class Report:
    """All results plus the scoring mode; :meth:`table` groups them."""

    model: str
    mode: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    def groups(self) -> list[dict[str, Any]]:
        """Rows ``{family, difficulty, n, format, accuracy, chance}`` (fractions), then ``all``."""
        by: dict[tuple[str, int], list[Result]] = defaultdict(list)
        for r in self.results:
            by[(r.family, r.difficulty)].append(r)
        rows = [self._row(f, d, rs) for (f, d), rs in sorted(by.items())]
        rows.append(self._row("all", 0, self.results))
        return rows

    @staticmethod
    def _row(f: str, d: int, rs: list[Result]) -> dict[str, Any]:
        n = len(rs)
        return {"family": f, "difficulty": d, "n": n,
                "format": sum(r.format_ok for r in rs) / n if n else 0.0,
                "accuracy": sum(r.correct for r in rs) / n if n else 0.0,
                "chance": sum(r.chance for r in rs) / n if n else 0.0}

    def table(self) -> str:
        """Markdown table per family × difficulty (n, format %, accuracy %, chance %)."""
        lines = [f"model: {self.model} · scoring: {self.mode} · {len(self.results)} prompts · "
                 f"{self.seconds:.0f} s",
                 "", "| family | level | n | format % | accuracy % | chance % |",
                 "|---|---|---:|---:|---:|---:|"]
        for r in self.groups():
            fmt = "–" if self.mode == "plain" else f"{100 * r['format']:.0f}"
            lines.append(f"| {r['family']} | {r['difficulty'] or 'all'} | {r['n']} | {fmt} | "
                         f"{100 * r['accuracy']:.0f} | {100 * r['chance']:.0f} |")
        return "\n".join(lines)

    def by_answer(self) -> list[dict[str, Any]]:
        """Per reference answer: ``{answer, n, accuracy, predicted}`` — ``predicted`` is the
        fraction of *all* prompts answered with this value. Sorted numerically where possible.

        The answer-prior check: a policy that learned to say the most common answer more
        often gains accuracy without learning the task (count questions after RL were the
        case that showed it: answer 1 up, answers 2–3 down). ``predicted`` far above the
        answer's share of ``n`` says so.
        """
        n_all = len(self.results) or 1
        refs: dict[str, list[Result]] = defaultdict(list)
        preds: dict[str, int] = defaultdict(int)
        for r in self.results:
            refs[r.answer].append(r)
            preds[r.prediction] += 1

        def key(a: str):
            try:
                return (0, float(a), a)
            except ValueError:
                return (1, 0.0, a)

        return [{"answer": a, "n": len(rs), "accuracy": sum(r.correct for r in rs) / len(rs),
                 "predicted": preds.get(a, 0) / n_all} for a, rs in sorted(refs.items(), key=lambda kv: key(kv[0]))]

    def answer_table(self) -> str:
        """Markdown table of :meth:`by_answer` (share of prompts, accuracy, share predicted)."""
        n_all = len(self.results) or 1
        lines = ["| answer | n | share % | accuracy % | predicted % |", "|---|---:|---:|---:|---:|"]
        for r in self.by_answer():
            lines.append(f"| {r['answer']} | {r['n']} | {100 * r['n'] / n_all:.0f} | {100 * r['accuracy']:.0f} | "
                         f"{100 * r['predicted']:.0f} |")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"model": self.model, "mode": self.mode, "seconds": self.seconds, "table": self.groups(),
                "by_answer": self.by_answer(),
                "results": [r.__dict__ for r in self.results]}


def stratified(rows: list[dict], n: int | None) -> list[dict]:
    """Up to ``n`` rows taken round-robin over (family, difficulty) groups, file order kept
    inside each group (so a small ``n`` still covers every group)."""
    if not n or n >= len(rows):
        return rows
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by[(r.get("family"), r.get("difficulty"))].append(r)
    keys = sorted(by, key=lambda k: (str(k[0]), k[1] or 0))
    out, i = [], 0
    while len(out) < n:
        for k in keys:
            if i < len(by[k]) and len(out) < n:
                out.append(by[k][i])
        i += 1
    return out


def model_stage(path: str) -> str | None:
    """``stage`` from a folder's ``studio_model.json`` (``"base"``/``"thinking"``), else None."""
    from studio.engine.infer.models import studio_meta

    return studio_meta(path).get("stage")


def _messages(prompt: str) -> list[dict]:
    parts = prompt.split("<image>")
    content: list[dict] = []
    if parts[0]:
        content.append({"type": "text", "text": parts[0]})
    for p in parts[1:]:
        content.append({"type": "image"})
        if p:
            content.append({"type": "text", "text": p})
    return [{"role": "user", "content": content}]


def generate_outputs(model, processor, rows: list[dict], *, greedy: bool = True, max_new_tokens: int = 160,
                     batch_size: int = 8, temperature: float = 1.0) -> list[str]:
    """Generate one completion per row (left-padded batches); decoded keeping special tokens.

    Each completion is cut after its first eos token (what follows is padding; GLM-4.1V's
    eos list holds ``</answer>``, which stays) and a final end token such as ``<|user|>`` is
    dropped, so the format judge sees what the model wrote: a stray role token stays and fails.
    """
    import torch
    from PIL import Image

    from studio.engine.rewards.format import END_TOKENS

    outs: list[str] = []
    tok = processor.tokenizer
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    eos.add(tok.pad_token_id)
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        texts = [processor.apply_chat_template(_messages(r["prompt"]), add_generation_prompt=True,
                                               tokenize=False) for r in chunk]
        images = [Image.open(p).convert("RGB") for r in chunk for p in r["images"]]
        enc = processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        enc = enc.to(model.device)
        kw: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        if greedy:
            kw.update(do_sample=False, top_k=None, top_p=None, temperature=None)
        else:
            kw.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
        with torch.no_grad():
            gen = model.generate(**enc, **kw)
        new = gen[:, enc["input_ids"].shape[1]:]
        for seq in new.tolist():
            cut = next((j + 1 for j, t in enumerate(seq) if t in eos), len(seq))
            text = tok.decode(seq[:cut], skip_special_tokens=False)
            end = next((t for t in END_TOKENS if text.endswith(t)), "")
            outs.append(text[: len(text) - len(end)])
    return outs


def evaluate(model: str, tasks_file: str | Path, *, n: int | None = 20, greedy: bool = True,
             mode: str = "auto", max_new_tokens: int = 160, batch_size: int = 8,
             loaded: tuple | None = None) -> Report:
    """Score ``model`` (a folder, hub id or ``"embedded"``) on an RL/eval prompt JSONL.

    Args:
        n: prompts to score, stratified over family × difficulty (None: all).
        mode: ``"thinking"``, ``"plain"`` or ``"auto"`` (see module doc).
        loaded: an already loaded ``(model, processor)`` to reuse.

    Raises:
        InputError: bad mode; DataError: bad task file; ModelLoadError: bad model.
    """
    from studio.config import ModelSpec
    from studio.engine.infer.models import load, resolve
    from studio.engine.workshop.task_files import load_task_rows

    if mode not in ("auto", "thinking", "plain"):
        raise InputError(f"Unknown scoring mode {mode!r}; use auto, thinking or plain.")
    rows = stratified(load_task_rows(tasks_file), n)
    if mode == "auto":
        mode = "plain" if model_stage(resolve(model)) == "base" else "thinking"
    m, proc = loaded or load(ModelSpec(name_or_path=model, device="cpu"))
    t0 = time.time()
    outs = generate_outputs(m, proc, rows, greedy=greedy, max_new_tokens=max_new_tokens, batch_size=batch_size)
    rep = Report(model=model, mode=mode, seconds=0.0)
    for r, text in zip(rows, outs):
        p = parse(text)
        ok = format_ok(text)
        if mode == "thinking":
            pred = p.boxed[0] if ok else ""
            correct = ok and verify(pred, str(r["answer"]), r["task_type"], r.get("choices"))
        else:
            pred = (p.boxed[0] if p.boxed else p.answer).strip().split("\n")[0]
            correct = verify(pred, str(r["answer"]), r["task_type"], r.get("choices"))
        choices = r.get("choices") or []
        rep.results.append(Result(id=str(r.get("id", "")), family=str(r["family"]),
                                  difficulty=int(r["difficulty"]), answer=str(r["answer"]), output=text,
                                  prediction=pred, format_ok=ok, correct=bool(correct),
                                  chance=1.0 / len(choices) if choices else 0.0))
    rep.seconds = time.time() - t0
    return rep


#: The Chat tab question the workshop model must answer (issue: "How many red circles?").
CHAT_CHECK_QUESTION = "How many red circles?"


def chat_check_scenes(n: int, seed: int = 0) -> list[tuple[Any, int]]:
    """``n`` held-out scenes (``studio tasks`` eval split, ``seed + 1000``; the three
    families drawn as shapes: *shapes*, *position*, *size*) with their number of red
    circles: half with none, a quarter with one and a quarter with two or more, so that
    always answering "0" scores 50 % and spotting one circle without counting scores 75 %.
    Scenes without a red circle come from the first :data:`~studio.engine.workshop.tasks.EVAL_POOL`
    held-out scenes; scenes with several are rare (46 of the 4,500 shape scenes among the
    first :data:`~studio.engine.workshop.tasks.HELD_OUT_POOL`), so that pool is searched for them.
    Training skips both (:func:`studio.engine.workshop.toy_train.eval_keys`). Returns
    ``[(PIL image 112×112, count), …]``, interleaved (zero, one, zero, two+, …).

    Raises:
        InputError: ``n`` so large that the held-out pools cannot fill the quotas (n > ~180).
    """
    from studio.engine.workshop import tasks as T

    quota = {1: n // 4, 2: n // 2 - n // 4}
    quota[0] = n - quota[1] - quota[2]
    found: dict[int, list] = {0: [], 1: [], 2: []}
    if n <= 0:
        return []
    for i, sc in enumerate(T.generate_scenes(T.HELD_OUT_POOL, seed + 1000, render_image=False)):
        k = T.count_kind(sc.description)  # beyond the pool, training may have seen the scene
        b = min(k, 2)
        if sc.description["kind"] == "shapes" and len(found[b]) < quota[b] and (k or i < T.EVAL_POOL):
            found[b].append((T.render(sc.description), k))
            if all(len(found[c]) == quota[c] for c in found):
                return _interleave(found[0], _interleave(found[1], found[2]))
    raise InputError(f"Only {sum(map(len, found.values()))} held-out scenes found for the chat check; "
                     "ask for fewer.")


def _interleave(a: list, b: list) -> list:
    """``a[0], b[0], a[1], b[1], …``, then the rest of the longer list."""
    return [x for pair in itertools.zip_longest(a, b, fillvalue=_interleave) for x in pair if x is not _interleave]


def chat_check(model, processor, n: int = 40, *, seed: int = 0, gen=None) -> dict[str, Any]:
    """Ask "How many red circles?" about ``n`` held-out scenes exactly as the Chat tab
    does (:func:`studio.engine.infer.chat.stream`, the tab's default :class:`GenerationConfig`
    — sampling at temperature 0.8, top-p 0.9, top-k 2 — seeded per prompt so that the
    check repeats; the tab itself draws a fresh seed).

    Returns ``{"n", "format", "accuracy", "by_count", "zero_baseline", "thinking_tokens",
    "examples"}``: fractions in [0, 1]; ``by_count`` the accuracy on scenes with ``"0"``,
    ``"1"`` and ``"2+"`` red circles; ``zero_baseline`` the accuracy of always answering 0;
    ``thinking_tokens`` the mean tokens of thinking; ``examples`` the first three outputs.
    """
    from studio.config import GenerationConfig
    from studio.engine.infer import chat as engine
    from studio.engine.infer.media import TurnMedia

    ok = fmt = think = 0
    examples = []
    hits: dict[str, list[bool]] = {"0": [], "1": [], "2+": []}
    scenes = chat_check_scenes(n, seed)
    for i, (image, count) in enumerate(scenes):
        g = dataclasses.replace(gen or GenerationConfig(), seed=seed + i)
        turn = engine.ChatTurn("user", CHAT_CHECK_QUESTION, TurnMedia(kind="image", images=[image]))
        done = [e for e in engine.stream(model, processor, [turn], g) if isinstance(e, engine.Done)][0]
        p = done.parsed
        good = format_ok(done.text)
        fmt += good
        right = bool(good and verify(p.boxed[0], str(count), "count"))
        ok += right
        hits[str(count) if count < 2 else "2+"].append(right)
        think += done.stats.thinking_tokens
        if len(examples) < 3:
            examples.append({"answer": count, "output": done.text})
    return {"n": n, "format": fmt / n, "accuracy": ok / n, "thinking_tokens": think / n,
            "by_count": {k: sum(v) / len(v) for k, v in hits.items() if v},
            "zero_baseline": sum(c == 0 for _, c in scenes) / n, "examples": examples}


def before_after_table(before: Report, after: Report) -> str:
    """Markdown: format and accuracy per family × level before and after training, with the change.

    Both reports must score the same prompts (same file, same ``n``); rows are matched by
    (family, level).
    """
    b = {(r["family"], r["difficulty"]): r for r in before.groups()}
    lines = [f"before: `{before.model}` · after: `{after.model}` · {len(after.results)} held-out prompts",
             "", "| family | level | n | format % before → after | accuracy % before → after | change |",
             "|---|---|---:|---:|---:|---:|"]
    for r in after.groups():
        o = b.get((r["family"], r["difficulty"]), {"format": 0.0, "accuracy": 0.0})
        d = 100 * (r["accuracy"] - o["accuracy"])
        lines.append(f"| {r['family']} | {r['difficulty'] or 'all'} | {r['n']} | "
                     f"{100 * o['format']:.0f} → {100 * r['format']:.0f} | "
                     f"{100 * o['accuracy']:.0f} → {100 * r['accuracy']:.0f} | {d:+.0f} |")
    return "\n".join(lines)

