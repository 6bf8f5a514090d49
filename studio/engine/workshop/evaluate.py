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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from studio.engine.infer.reasoning import parse
from studio.errors import InputError

#: ``fn(k)``: ``k`` more prompts were scored (the progress of :func:`evaluate`).
ProgressFn = Callable[[int], None]


def pct(x: float | None) -> str:
    """A fraction as a whole percent for a table, ``"–"`` for None.

    >>> pct(0.333), pct(None)
    ('33', '–')
    """
    return "–" if x is None else f"{100 * x:.0f}"


def _answer_key(a: str) -> tuple:
    """Sort key of answers: numbers in numeric order first, then words."""
    try:
        return (0, float(a), a)
    except ValueError:
        return (1, 0.0, a)


def verify(pred: str, answer: str, task_type: str, choices: Sequence[str] | None = None) -> bool:
    """True if ``pred`` is a correct answer, by the same verifiers as the RL reward
    (:func:`studio.engine.rewards.verify`; a word among ``choices`` is scored as
    ``exact``, :func:`studio.engine.rewards.row_task_type`). Partial credit (OCR edit
    similarity) does not count as correct; a grounding box is correct at IoU ≥
    :data:`GROUNDING_IOU` (its IoU is in :attr:`Result.iou`).

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

    tt = rewards.row_task_type(task_type, answer, list(choices or []) or None)
    if tt == "grounding":
        return box_iou(pred, answer) >= GROUNDING_IOU
    return rewards.verify(pred, answer, tt) >= 1.0


#: A grounding answer is correct when its box overlaps the reference with IoU ≥ this (the
#: usual REC accuracy, "Acc@0.5", as VLM-R1 and the GLM-4.1V report's grounding tables use).
GROUNDING_IOU = 0.5


def box_iou(pred: str, answer: str) -> float:
    """IoU of a predicted box answer with the reference box (0–1000 scale; 0.0 when either
    has no box; several boxes are matched as :func:`studio.engine.rewards.grounding.grounding_score`).

    >>> box_iou("[0,0,100,100]", "[50,0,150,100]")
    0.3333333333333333
    """
    from studio.engine import rewards

    return rewards.verify(pred, answer, "grounding")


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
    iou: float | None = None  # grounding rows: IoU of the predicted box with the reference


@dataclass
class Report:
    """All results plus the scoring mode; :meth:`table` groups them."""

    model: str
    mode: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    def groups(self) -> list[dict[str, Any]]:
        """Rows ``{family, difficulty, n, format, accuracy, chance, prior}`` (fractions), then ``all``.

        Two baselines to read a cell's accuracy against:

        * ``chance`` — the expected accuracy of a uniform random pick among the options a
          question offers (``choices``: 1/3 for "0, 1 or 2?"), averaged over the cell; a
          free-form question counts 0. None when no question in the group offers options.
        * ``prior`` — the accuracy of always giving the family's most common reference
          answer in this report (a model that learned only the answer prior scores this;
          see :meth:`by_answer`). The ``all`` row: that guesser over every family.
        """
        mode = self.family_modes()
        by: dict[tuple[str, int], list[Result]] = defaultdict(list)
        for r in self.results:
            by[(r.family, r.difficulty)].append(r)
        rows = [self._row(f, d, rs, mode) for (f, d), rs in sorted(by.items())]
        rows.append(self._row("all", 0, self.results, mode))
        return rows

    def family_modes(self) -> dict[str, str]:
        """family → its most common reference answer in this report (ties: the first in
        :meth:`by_answer`'s order)."""
        counts: dict[str, Counter] = defaultdict(Counter)
        for r in self.results:
            counts[r.family][r.answer] += 1
        return {f: min(c, key=lambda a: (-c[a], _answer_key(a))) for f, c in counts.items()}

    @staticmethod
    def _row(f: str, d: int, rs: list[Result], mode: dict[str, str]) -> dict[str, Any]:
        n = len(rs)
        offered = [r for r in rs if r.chance > 0]
        return {"family": f, "difficulty": d, "n": n,
                "format": sum(r.format_ok for r in rs) / n if n else 0.0,
                "accuracy": sum(r.correct for r in rs) / n if n else 0.0,
                "chance": sum(r.chance for r in rs) / n if n and offered else None,
                "prior": sum(r.answer == mode.get(r.family) for r in rs) / n if n else 0.0,
                "mean_iou": _mean([r.iou for r in rs if r.iou is not None])}

    def table(self) -> str:
        """Markdown table per family × difficulty (n, format %, accuracy %, chance %, prior %;
        see :meth:`groups`)."""
        boxes = any(r.iou is not None for r in self.results)
        lines = [f"model: {self.model} · scoring: {self.mode} · {len(self.results)} prompts · "
                 f"{self.seconds:.0f} s",
                 "", "| family | level | n | format % | accuracy % | chance % | prior % |"
                 + (" mean IoU |" if boxes else ""),
                 "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if boxes else "")]
        for r in self.groups():
            fmt = "–" if self.mode == "plain" else f"{100 * r['format']:.0f}"
            iou = "" if not boxes else " – |" if r["mean_iou"] is None else f" {r['mean_iou']:.2f} |"
            lines.append(f"| {r['family']} | {r['difficulty'] or 'all'} | {r['n']} | {fmt} | "
                         f"{100 * r['accuracy']:.0f} | {pct(r['chance'])} | {pct(r['prior'])} |{iou}")
        return "\n".join(lines)

    def by_answer(self, family: str | None = None) -> list[dict[str, Any]]:
        """Per reference answer: ``{answer, n, accuracy, predicted}`` — ``predicted`` is the
        fraction of *all* prompts (of ``family``'s prompts when given) answered with this
        value. Sorted numerically where possible.

        The answer-prior check: a policy that learned to say the most common answer more
        often gains accuracy without learning the task (count questions after RL were the
        case that showed it: answer 1 up, answers 2–3 down). ``predicted`` far above the
        answer's share of ``n`` says so.
        """
        results = [r for r in self.results if family is None or r.family == family]
        n_all = len(results) or 1
        refs: dict[str, list[Result]] = defaultdict(list)
        preds: dict[str, int] = defaultdict(int)
        for r in results:
            refs[r.answer].append(r)
            preds[r.prediction] += 1
        return [{"answer": a, "n": len(rs), "accuracy": sum(r.correct for r in rs) / len(rs),
                 "predicted": preds.get(a, 0) / n_all}
                for a, rs in sorted(refs.items(), key=lambda kv: _answer_key(kv[0]))]

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


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


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
                     batch_size: int = 8, temperature: float = 1.0, progress: ProgressFn | None = None) -> list[str]:
    """Generate one completion per row (left-padded batches); decoded keeping special tokens.
    ``progress(k)`` is called after each batch of ``k`` rows.

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
        if progress is not None:
            progress(len(chunk))
    return outs


def evaluate(model: str, tasks_file: str | Path, *, n: int | None = 20, greedy: bool = True,
             mode: str = "auto", max_new_tokens: int = 160, batch_size: int = 8,
             loaded: tuple | None = None, progress: ProgressFn | None = None,
             temperature: float = 1.0) -> Report:
    """Score ``model`` (a folder, hub id or ``"embedded"``) on an RL/eval prompt JSONL.

    Args:
        n: prompts to score, stratified over family × difficulty (None: all).
        mode: ``"thinking"``, ``"plain"`` or ``"auto"`` (see module doc).
        loaded: an already loaded ``(model, processor)`` to reuse.
        temperature: sampling temperature when not ``greedy``.
        progress: called with the number of prompts scored after each batch (no gradio
            here; the UI turns it into a progress bar).

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
    outs = generate_outputs(m, proc, rows, greedy=greedy, max_new_tokens=max_new_tokens, batch_size=batch_size,
                            progress=progress, temperature=temperature)
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
        iou = box_iou(pred, str(r["answer"])) if r["task_type"] == "grounding" else None
        rep.results.append(Result(id=str(r.get("id", "")), family=str(r["family"]),
                                  difficulty=int(r["difficulty"]), answer=str(r["answer"]), output=text,
                                  prediction=pred, format_ok=ok, correct=bool(correct),
                                  chance=1.0 / len(choices) if choices else 0.0, iou=iou))
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


def before_after_rows(before: Report, after: Report) -> list[dict[str, Any]]:
    """One row per family × level (then ``all``) of two reports on the same prompts:
    ``{family, difficulty, n, format_before, format_after, accuracy_before, accuracy_after,
    change, chance, prior}`` — fractions; ``change`` = accuracy after − before; ``chance``
    and ``prior`` the baselines of :meth:`Report.groups` (from ``after``'s prompts, which
    are ``before``'s). Rows are matched by (family, level); a row ``before`` lacks counts 0.
    """
    b = {(r["family"], r["difficulty"]): r for r in before.groups()}
    out = []
    for r in after.groups():
        o = b.get((r["family"], r["difficulty"]), {"format": 0.0, "accuracy": 0.0})
        out.append({"family": r["family"], "difficulty": r["difficulty"], "n": r["n"],
                    "format_before": o["format"], "format_after": r["format"],
                    "accuracy_before": o["accuracy"], "accuracy_after": r["accuracy"],
                    "change": r["accuracy"] - o["accuracy"], "chance": r["chance"], "prior": r["prior"]})
    return out


def before_after_answers(before: Report, after: Report, top: int = 6) -> list[dict[str, Any]]:
    """The answer-prior check of :meth:`Report.by_answer`, before and after, per family:
    ``[{family, n, answers: [{answer, n, share, accuracy_before, accuracy_after,
    predicted_before, predicted_after}], more}]`` — fractions of the family's prompts; the
    ``top`` most frequent reference answers (then numeric/word order), ``more`` = how many
    answers were left out. A ``predicted_after`` that rises far above ``share`` while other
    answers' accuracy falls is a gain from saying the common answer, not from the task.
    """
    out = []
    for fam in sorted({r.family for r in after.results}):
        a_rows = after.by_answer(fam)
        b_rows = {r["answer"]: r for r in before.by_answer(fam)}
        n = sum(r["n"] for r in a_rows)
        keep = sorted(a_rows, key=lambda r: (-r["n"], _answer_key(r["answer"])))[:top]
        keep.sort(key=lambda r: _answer_key(r["answer"]))
        answers = [{"answer": r["answer"], "n": r["n"], "share": r["n"] / n,
                    "accuracy_before": b_rows.get(r["answer"], {}).get("accuracy", 0.0),
                    "accuracy_after": r["accuracy"],
                    "predicted_before": b_rows.get(r["answer"], {}).get("predicted", 0.0),
                    "predicted_after": r["predicted"]} for r in keep]
        out.append({"family": fam, "n": n, "answers": answers, "more": len(a_rows) - len(keep)})
    return out


def before_after_table(before: Report, after: Report) -> str:
    """Markdown: format and accuracy per family × level before and after training, with the
    change and the cell's baselines (chance, prior: :meth:`Report.groups`).

    Both reports must score the same prompts (same file, same ``n``); rows are matched by
    (family, level).
    """
    lines = [f"before: `{before.model}` · after: `{after.model}` · {len(after.results)} held-out prompts",
             "", "| family | level | n | format % before → after | accuracy % before → after | change | "
             "chance % | prior % |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in before_after_rows(before, after):
        lines.append(f"| {r['family']} | {r['difficulty'] or 'all'} | {r['n']} | "
                     f"{pct(r['format_before'])} → {pct(r['format_after'])} | "
                     f"{pct(r['accuracy_before'])} → {pct(r['accuracy_after'])} | {100 * r['change']:+.0f} | "
                     f"{pct(r['chance'])} | {pct(r['prior'])} |")
    return "\n".join(lines)
