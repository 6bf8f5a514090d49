"""Text and training sequences from synthetic scenes: the tokenizer's corpus, captions, questions, chats,
batches (easy scenes first), the held-out keys training skips, and the teacher-forced loss of a batch.
"""

from __future__ import annotations

import dataclasses
import random
import re
import zlib

from studio.engine.workshop import grounding as G
from studio.engine.workshop import task_files
from studio.engine.workshop import tasks as T
from studio.engine.workshop.toy_train.model import EVAL_SEED_OFFSET, IMAGE_TOKENS


#: BPE vocabulary of the workshop model's tokenizer (:func:`build_toy_processor`).
TOY_VOCAB = 1024


def toy_corpus(n_scenes: int = 480, seed: int = 4242) -> str:
    """Text of the task domain for the workshop tokenizer: the captions, questions (both
    the long and the Chat tab's short form), traces and answers of ``n_scenes`` scenes of
    every family and level. Deterministic."""
    lines = []
    for s in T.generate_scenes(n_scenes, seed, render_image=False):
        add_kind_counts(s)
        lines.append(caption(s))
        for it in s.items:
            m = _LONG_COUNT.match(it.question)
            short = f"How many {m.group(1)}?" if m else ""
            lines += [f"Question: {it.question}", short, f"Answer: {it.answer}", it.trace, it.answer]
    return "\n".join(x for x in lines if x) + "\n"


def build_toy_processor():
    """The workshop model's processor: the embedded model's (same image/video processors,
    special tokens and chat template) with a BPE vocabulary of :data:`TOY_VOCAB` trained on
    :func:`toy_corpus` as well, so that the task's words are single tokens.

    Why (measured): with the embedded model's 636-token vocabulary, capitalised words are
    spelt letter by letter ("Red" = R·e·d, "Green" = G·re·en); after thinking SFT the model
    wrote "Reddddden squares" and mixed up the colour and shape of the question, and its
    "How many red circles?" accuracy (52 %) fell below what the same base model answered
    directly (78 %)."""
    from studio.engine.infer.tiny import build_processor

    return build_processor(corpus=toy_corpus(), vocab_size=TOY_VOCAB)

# --------------------------------------------------------------------------- sequences

IMAGE_BLOCK = "<|begin_of_image|>" + "<|image|>" * IMAGE_TOKENS + "<|end_of_image|>"
NO_LOSS, LOSS, ANSWER = 0, 1, 2  # segment kinds; ANSWER tokens also feed the accuracy probe


def caption(scene: T.Scene) -> str:
    """A plain-English caption listing everything in the scene (base pretraining text)."""
    d = scene.description
    if d["kind"] == "digits":
        a, op, b = d["symbols"]
        return f"The image shows {a} {dict(x='*').get(op, op)} {b}."
    parts = [f"{o['color']} {o['shape']} at row {o['row'] + 1} col {o['col'] + 1}" for o in d["objects"]]
    return "The image shows " + ", ".join(parts) + "."


_LONG_COUNT = re.compile(r"^How many (.+) are there\?$")


def question_text(item: T.TaskItem, stage: str) -> str:
    """The question as trained. In the thinking stage a third of the counting questions use
    the short form people type in the Chat tab ("How many red circles?"), chosen by a hash
    of the item id (deterministic)."""
    m = _LONG_COUNT.match(item.question)
    if stage == "thinking" and m and zlib.crc32(item.id.encode()) % 3 == 0:
        return f"How many {m.group(1)}?"
    return item.question


def segments(scene: T.Scene, stage: str, style: str, max_questions: int) -> list[tuple[str, int]]:
    """Text segments with a loss kind; boundaries fall on added tokens, so tokenising the
    segments one by one gives the same ids as tokenising their concatenation.

    ``style``: ``"raw"`` (base: caption + ``Question:/Answer:`` lines) or ``"chat"`` (the
    GLM-4.1V chat template; base answers plainly, thinking in the think/answer format).
    """
    items = scene.items[:max_questions]
    if style == "raw":
        segs = [("[gMASK]<sop>" + IMAGE_BLOCK, NO_LOSS), (caption(scene), LOSS)]
        for it in items:
            # the question is the sampler's choice, not something the image predicts: no
            # loss on it (as instruction tuning masks the prompt), so the gradient goes to
            # the grounded tokens (caption and answers)
            segs += [(f"\nQuestion: {it.question}\nAnswer:", NO_LOSS), (f" {it.answer}", ANSWER)]
        segs.append(("<|endoftext|>", LOSS))
        return segs
    segs = [("[gMASK]<sop>", NO_LOSS)]
    for k, it in enumerate(items):
        # <|user|> ends the previous answer (GLM has no end-of-turn token): it carries loss
        segs.append(("<|user|>", LOSS if k else NO_LOSS))
        segs.append(("\n" + (IMAGE_BLOCK if k == 0 else "") + question_text(it, stage) + "<|assistant|>\n",
                     NO_LOSS))
        if stage == "base":
            segs.append((it.answer, ANSWER))
        else:
            segs += [(f"<think>{it.trace}</think><answer><|begin_of_box|>", LOSS),
                     (it.answer, ANSWER), ("<|end_of_box|></answer>", LOSS)]
    segs.append(("<|endoftext|>", LOSS))
    return segs


def chat_messages(scene: T.Scene, stage: str, max_questions: int) -> list[dict]:
    """The chat the ``"chat"`` style renders (for checking against the chat template)."""
    msgs = []
    for k, it in enumerate(scene.items[:max_questions]):
        content = ([{"type": "image"}] if k == 0 else []) + [{"type": "text", "text": question_text(it, stage)}]
        msgs.append({"role": "user", "content": content})
        msgs.append({"role": "assistant",
                     "content": it.answer if stage == "base" else task_files.assistant_text(it)})
    return msgs


def encode(tokenizer, segs: list[tuple[str, int]]):
    """Token ids, per-token loss kind and ``mm_token_type_ids`` (1 on ``<|image|>``)."""
    ids, kinds = [], []
    for text, kind in segs:
        t = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += t
        kinds += [kind] * len(t)
    img = tokenizer.convert_tokens_to_ids("<|image|>")
    return ids, kinds, [1 if i == img else 0 for i in ids]


def level_weights(progress: float) -> list[float]:
    """Curriculum over difficulty 1..3: easy first, then an even mix (progress in [0, 1])."""
    a = min(max(progress / 0.4, 0.0), 1.0)
    start, end = (0.75, 0.2, 0.05), (0.3, 0.35, 0.35)
    return [s + (e - s) * a for s, e in zip(start, end)]


def make_batch(processor, scenes: list[T.Scene], stage: str, max_questions: int, rng: random.Random):
    """Right-padded training batch: input_ids, attention_mask, mm_token_type_ids,
    pixel_values, image_grid_thw, labels (-100 where no loss) and answer_mask (bool)."""
    import torch

    tok = processor.tokenizer
    rows = []
    for s in scenes:
        style = ("raw" if rng.random() < 0.5 else "chat") if stage == "base" else "chat"
        rows.append(encode(tok, segments(s, stage, style, max_questions)))
    n = max(len(r[0]) for r in rows)
    pad = tok.pad_token_id
    ids = torch.full((len(rows), n), pad, dtype=torch.long)
    att = torch.zeros((len(rows), n), dtype=torch.long)
    mm = torch.zeros((len(rows), n), dtype=torch.long)
    labels = torch.full((len(rows), n), -100, dtype=torch.long)
    ans = torch.zeros((len(rows), n), dtype=torch.bool)
    for b, (i, k, m) in enumerate(rows):
        L = len(i)
        ids[b, :L] = torch.tensor(i)
        att[b, :L] = 1
        mm[b, :L] = torch.tensor(m)
        kk = torch.tensor(k)
        labels[b, :L] = torch.where(kk > 0, ids[b, :L], torch.full_like(kk, -100))
        ans[b, :L] = kk == ANSWER
    vis = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt")
    return dict(input_ids=ids, attention_mask=att, mm_token_type_ids=mm,
                pixel_values=vis["pixel_values"], image_grid_thw=vis["image_grid_thw"],
                labels=labels, answer_mask=ans)


def eval_keys(seed: int, n: int = T.EVAL_POOL, pool: int = T.HELD_OUT_POOL, *,
              grounding: bool = False) -> set[str]:
    """Contents of the held-out scenes (``seed + 1000``) that training must skip: the first
    ``n`` (the eval files) and those with a red circle among the first ``pool`` (the Chat
    tab's check); see :data:`studio.engine.workshop.tasks.EVAL_POOL`. With ``grounding``
    also the first ``n`` grounding scenes *per level* of ``seed + 1000`` and of every seed in
    :data:`~studio.engine.workshop.tasks.GROUNDING_HELD_OUT_SEEDS` (the recipes' held-out files)."""
    held = T.generate_scenes(max(n, pool), seed + EVAL_SEED_OFFSET, render_image=False)
    keys = {s.key() for i, s in enumerate(held) if i < n or (i < pool and T.count_kind(s.description))}
    if grounding:
        for gs in (seed + EVAL_SEED_OFFSET, *T.GROUNDING_HELD_OUT_SEEDS):
            keys |= {s.key() for s in T.generate_scenes(n * len(T.LEVELS), gs, ["grounding"], render_image=False)}
    return keys


def add_kind_counts(scene: T.Scene) -> T.Scene:
    """Give every shapes-kind training scene the "How many <colour> <shape>s are there?"
    questions (:func:`studio.engine.workshop.tasks.kind_count_questions`; level-2/3 *shapes* scenes
    have them already). The Chat tab's first question, "How many red circles?", is asked
    about scenes of every family (grounding scenes keep only their box questions), so the model must learn it on all of them; the RL/eval
    files keep their families' own questions. Returns ``scene`` (items appended)."""
    d = scene.description
    if d["kind"] != "shapes" or (scene.family == "shapes" and scene.difficulty >= 2) or scene.family == "grounding":
        return scene
    for k, (q, ans, trace, ttype, choices) in enumerate(T.kind_count_questions(d, scene.difficulty)):
        scene.items.append(T.TaskItem(id=f"{scene.image_id}-k{k}", image_id=scene.image_id, family=scene.family,
                                      difficulty=scene.difficulty, question=q, answer=ans, trace=trace,
                                      task_type=ttype, choices=list(choices), scene=d))
    return scene


class SceneStream:
    """Fresh training scenes for step ``k``: deterministic in (seed, k), held-out removed.

    ``family_weights`` (family → relative weight; default every family of
    :data:`~studio.engine.workshop.tasks.FAMILIES` alike) picks each scene's family;
    ``family_levels`` (family → levels) restricts a family's levels (the curriculum's level
    weights renormalised over them); ``drop_questions`` (a regular expression) removes the
    questions it matches (left for RL to teach; a scene left without questions is skipped).
    With the defaults the stream is the same as before these options existed (same draws)."""

    def __init__(self, seed: int, batch: int, skip: set[str], family_weights: dict[str, float] | None = None,
                 family_levels: dict[str, tuple[int, ...]] | None = None, drop_questions: str | None = None,
                 flip_rows: float = 0.0, yx_boxes: float = 0.0):
        self.seed, self.batch, self.skip, self.flip_rows, self.yx_boxes = seed, batch, skip, flip_rows, yx_boxes
        self.drop = re.compile(drop_questions) if drop_questions else None
        self.families = list(family_weights or T.FAMILIES)
        self.weights = None if family_weights is None else [float(family_weights[f]) for f in self.families]
        self.levels = dict(family_levels or {})

    def _level(self, rng: random.Random, family: str, w: list[float]) -> int:
        allowed = self.levels.get(family)
        if not allowed:
            return rng.choices(T.LEVELS, weights=w)[0]
        return rng.choices(list(allowed), weights=[w[T.LEVELS.index(lv)] for lv in allowed])[0]

    def _family(self, rng: random.Random) -> str:
        if self.weights is None:
            return self.families[rng.randrange(len(self.families))]
        return rng.choices(self.families, weights=self.weights)[0]

    def scenes(self, step: int, progress: float) -> list[T.Scene]:
        rng = random.Random(f"toy-train/{self.seed}/{step}")
        flip_rng = random.Random(f"toy-train/{self.seed}/{step}/flip-rows")
        yx_rng = random.Random(f"toy-train/{self.seed}/{step}/yx-boxes")
        w = level_weights(progress)
        out, j = [], 0
        while len(out) < self.batch:
            fam = self._family(rng)
            lvl = self._level(rng, fam, w)
            # index space: step * 1000 + j never repeats across steps
            s = T.make_scene(fam, lvl, self.seed, step * 1000 + j, render_image=False)
            j += 1
            if s.key() in self.skip:
                continue
            add_kind_counts(s)
            if self.drop is not None:
                s.items = [it for it in s.items if not self.drop.search(it.question)]
                if not s.items:
                    continue
            if self.flip_rows:
                s.items = [_flip(it, flip_rng, self.flip_rows) for it in s.items]
            if self.yx_boxes and s.family == "grounding":
                s.items = [dataclasses.replace(it, answer=G.yx_box(it.answer))
                           if yx_rng.random() < self.yx_boxes else it for it in s.items]
            rng.shuffle(s.items)
            s.image = T.render(s.description)
            out.append(s)
        return out


def _flip(item: T.TaskItem, rng: random.Random, p: float) -> T.TaskItem:
    """``item`` with the bottom-up row convention's trace and box, with probability ``p``
    (top/bottom grounding questions only; others unchanged)."""
    if item.family != "grounding" or item.difficulty != 3:
        return item
    flipped = G.flipped_rows(item.scene, item.question)
    if flipped is None or rng.random() >= p:
        return item
    trace, answer = flipped
    return dataclasses.replace(item, trace=trace, answer=answer)


def forward_loss(model, batch):
    """Mean token cross-entropy and answer-token argmax accuracy (teacher forced)."""
    import torch

    inputs = {k: v for k, v in batch.items() if k not in ("labels", "answer_mask")}
    out = model(**inputs)
    logits = out.logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                             ignore_index=-100)
    am = batch["answer_mask"][:, 1:]
    with torch.no_grad():
        pred = logits.argmax(-1)
        acc = (pred[am] == labels[am]).float().mean().item() if am.any() else float("nan")
    return loss, acc
