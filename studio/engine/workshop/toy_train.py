"""Train the workshop model from scratch on CPU: ``toy-base`` then ``toy-thinking``.

The GLM-4.1V pipeline in miniature (arXiv 2507.01006 §3–4): a pretrained vision encoder, a
*base* model pretrained on image captions and plain question→answer text, then
long-CoT-style SFT whose job is the format
``<think>…</think><answer><|begin_of_box|>…<|end_of_box|></answer>``. Same classes
(``Glm4vForConditionalGeneration``), processor and chat template as the embedded tiny
model (:mod:`studio.engine.infer.tiny`); larger sizes (~4 M parameters: text hidden 256 × 4
layers, vision hidden 128 × depth 4) and a tokenizer whose BPE also saw the task's text
(:func:`build_toy_processor`).

Commands (each well under 90 min on 2 CPU cores; measured 35 and 6 min)::

    python -m studio.engine.workshop.toy_train base --out studio/assets/toy-base --seed 0
    python -m studio.engine.workshop.toy_train thinking --init studio/assets/toy-base \
        --out studio/assets/toy-thinking --seed 0

The recipe, each step measured here (numbers in the functions' docstrings):

1. *Vision pretraining* (:func:`pretrain_vision`, ~4 min): the vision tower learns dense
   per-cell labels (content, colour, row, column, size) with linear heads that are then
   thrown away, so every visual token carries its cell's attributes linearly. Two
   data-independent fixes make it learn: a fixed 2-D sine-cosine position embedding
   (:func:`sincos_position_embedding`) and a patch-embedding bias that maps the blank
   canvas to zero (:func:`cancel_background`; without it colour was never learnt).
2. *Base pretraining* (vision tower frozen, its tokens rescaled to std 0.5 by
   :func:`scale_visual_tokens`): captions listing every object in reading order plus
   plain ``Question:/Answer:`` lines or chat turns, many questions per image, fresh
   synthetic scenes every step, easy scenes first (:func:`level_weights`); no loss on
   the questions.
3. *Thinking SFT*: the same scenes as GLM-format chats with a short trace and a boxed
   answer.

Earlier recipes, kept as options and measured worse: a random frozen vision tower
(``--vision-steps 0``; 67 % held-out accuracy and chance on "How many red circles?"),
a vision tower trained only through the language model's loss (``--train-vision``:
collapsed), and a trained merger on a random encoder (``--train-merger``: collapsed
onto colour). The log shows the visual tokens' variance shares (:func:`variance_shares`)
and, every ``--eval-every`` steps, :func:`vision_diagnostic` (``img_gap``: loss with
shuffled images minus loss with the right ones) and the teacher-forced answer accuracy
per family; ``--min-gap`` stops a run that ignores the images.

Runs are step-based on this machine: the wall-clock budgets (``--minutes``, default 60
for base and 15 for thinking) only cut a run short on a slower machine, and then the LR
cosine and the curriculum follow the larger of step and time progress so the run still
ends with a decayed LR. ``--minutes 0`` turns the budgets off (bit-reproducible on one
machine).

A checkpoint (``save_pretrained``, safetensors) is written every ``--save-minutes``; the
optimizer state lives in a resume folder outside the output, so ``--resume`` continues a
crashed run from the last checkpoint. The final weights are re-saved in bfloat16
(:func:`ship`) so both models fit the repository's 25 MB budget.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from studio.engine.workshop import tasks as T
from studio.engine.infer import tiny
from studio.engine.fileperm import share_weights

#: The tiny model's shapes (studio.engine.infer.tiny), scaled up to ~4.0 M parameters (with the 796-token workshop vocabulary).
TOY_TEXT_CONFIG = dict(
    tiny.TEXT_CONFIG,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    # head_dim 64 × 0.5 / 2 = 16 rotary pairs split over (t, h, w)
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
)
TOY_VISION_CONFIG = dict(tiny.VISION_CONFIG, hidden_size=128, depth=4, intermediate_size=256, out_hidden_size=256)
IMAGE_TOKENS = (T.IMAGE_SIZE // 28) ** 2  # 16 merged visual tokens per 112×112 image
EVAL_SEED_OFFSET = 1000  # held-out scenes come from seed + 1000 (as `studio tasks --eval-n`)


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


@dataclass
class StageDefaults:
    """Per-stage training settings (overridable on the command line)."""

    steps: int
    lr: float
    batch: int
    warmup: int
    max_questions: int
    minutes: float  # wall-clock budget (see ``train(minutes=...)``)
    freeze_vision: bool = True  # see :func:`freeze_vision_encoder`
    freeze_merger: bool = True  # ditto: only the language model trains
    vision_steps: int = 0  # from scratch: dense vision pretraining first (:func:`pretrain_vision`)
    vision_minutes: float = 0.0


STAGES = {
    "base": StageDefaults(steps=4500, lr=1e-3, batch=16, warmup=40, max_questions=8, minutes=60,
                          vision_steps=800, vision_minutes=8),
    "thinking": StageDefaults(steps=2000, lr=5e-4, batch=12, warmup=20, max_questions=4, minutes=25),
}


def build_toy_model(tokenizer, seed: int = 0):
    """A randomly initialised ~4.0 M-parameter ``Glm4vForConditionalGeneration`` (fp32).

    Token ids and the generation config match :func:`studio.engine.infer.tiny.build_model`
    (eos = ``<|endoftext|>``, ``<|user|>``, ``<|observation|>``).
    """
    import torch
    from transformers import GenerationConfig, Glm4vConfig, Glm4vForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    config = Glm4vConfig(
        text_config=dict(TOY_TEXT_CONFIG, vocab_size=len(tokenizer), pad_token_id=ids("<|endoftext|>"),
                         eos_token_id=ids("<|endoftext|>")),
        vision_config=dict(TOY_VISION_CONFIG),
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"),
        image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"),
        video_end_token_id=ids("<|end_of_video|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Glm4vForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids("<|endoftext|>"), ids("<|user|>"), ids("<|observation|>")],
        pad_token_id=ids("<|endoftext|>"),
        do_sample=True,
        top_k=2,
        max_new_tokens=256,
    )
    return model


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
                     "content": it.answer if stage == "base" else T.assistant_text(it)})
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


def eval_keys(seed: int, n: int = T.EVAL_POOL, pool: int = T.HELD_OUT_POOL) -> set[str]:
    """Contents of the held-out scenes (``seed + 1000``) that training must skip: the first
    ``n`` (the eval files) and those with a red circle among the first ``pool`` (the Chat
    tab's check); see :data:`studio.engine.workshop.tasks.EVAL_POOL`."""
    held = T.generate_scenes(max(n, pool), seed + EVAL_SEED_OFFSET, render_image=False)
    return {s.key() for i, s in enumerate(held) if i < n or (i < pool and T.count_kind(s.description))}


def add_kind_counts(scene: T.Scene) -> T.Scene:
    """Give every shapes-kind training scene the "How many <colour> <shape>s are there?"
    questions (:func:`studio.engine.workshop.tasks.kind_count_questions`; level-2/3 *shapes* scenes
    have them already). The Chat tab's first question, "How many red circles?", is asked
    about scenes of every family, so the model must learn it on all of them; the RL/eval
    files keep their families' own questions. Returns ``scene`` (items appended)."""
    d = scene.description
    if d["kind"] != "shapes" or (scene.family == "shapes" and scene.difficulty >= 2):
        return scene
    for k, (q, ans, trace, ttype, choices) in enumerate(T.kind_count_questions(d, scene.difficulty)):
        scene.items.append(T.TaskItem(id=f"{scene.image_id}-k{k}", image_id=scene.image_id, family=scene.family,
                                      difficulty=scene.difficulty, question=q, answer=ans, trace=trace,
                                      task_type=ttype, choices=list(choices), scene=d))
    return scene


class SceneStream:
    """Fresh training scenes for step ``k``: deterministic in (seed, k), held-out removed."""

    def __init__(self, seed: int, batch: int, skip: set[str]):
        self.seed, self.batch, self.skip = seed, batch, skip

    def scenes(self, step: int, progress: float) -> list[T.Scene]:
        rng = random.Random(f"toy-train/{self.seed}/{step}")
        w = level_weights(progress)
        out, j = [], 0
        while len(out) < self.batch:
            fam = T.FAMILIES[rng.randrange(len(T.FAMILIES))]
            lvl = rng.choices(T.LEVELS, weights=w)[0]
            # index space: step * 1000 + j never repeats across steps
            s = T.make_scene(fam, lvl, self.seed, step * 1000 + j, render_image=False)
            j += 1
            if s.key() in self.skip:
                continue
            add_kind_counts(s)
            rng.shuffle(s.items)
            s.image = T.render(s.description)
            out.append(s)
        return out


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


def family_accuracy(model, batch: dict, families: list[str]) -> dict[str, float]:
    """Teacher-forced answer-token accuracy per task family (no grad): ``{"acc_<family>": …}``.
    ``families[b]`` is the family of row ``b``; shows early whether one family (e.g.
    *position*) stays at chance while the others learn."""
    import torch

    inputs = {k: v for k, v in batch.items() if k not in ("labels", "answer_mask")}
    with torch.no_grad():
        pred = model(**inputs).logits[:, :-1].argmax(-1)
    labels, am = batch["labels"][:, 1:], batch["answer_mask"][:, 1:]
    hit, tot = {}, {}
    for b, fam in enumerate(families):
        m = am[b]
        hit[fam] = hit.get(fam, 0) + int((pred[b][m] == labels[b][m]).sum())
        tot[fam] = tot.get(fam, 0) + int(m.sum())
    return {f"acc_{f}": round(hit[f] / tot[f], 3) for f in sorted(tot) if tot[f]}


def shuffled_images(batch: dict) -> dict:
    """The same batch with every row's image replaced by the next row's (a derangement for
    batch ≥ 2): ``pixel_values`` (B·P, D) is rolled by one image block of P patches."""
    thw = batch["image_grid_thw"]
    n = int(thw.shape[0])
    per = int(thw[0].prod())
    pv = batch["pixel_values"].reshape(n, per, -1).roll(1, dims=0).reshape(batch["pixel_values"].shape)
    return dict(batch, pixel_values=pv)


def vision_diagnostic(model, batch: dict) -> dict:
    """Does the model look at the image? (no grad; model should be in eval mode)

    Returns ``img_gap``: loss with each row's image swapped for another row's minus the loss
    with the right images (nats/token; ~0 means the answers ignore the image, the collapse
    this project hit), ``ans_acc_right`` / ``ans_acc_shuffled`` (answer-token accuracy) and
    ``feat_spread``: the across-image std of the merger's output features (B, 16, hidden)
    divided by their overall std (0 = every image gives the same visual tokens).
    """
    import torch

    with torch.no_grad():
        l1, a1 = forward_loss(model, batch)
        l2, a2 = forward_loss(model, shuffled_images(batch))
        out = model.model.get_image_features(batch["pixel_values"], batch["image_grid_thw"])
        f = getattr(out, "pooler_output", out)
        if isinstance(f, (tuple, list)):
            f = torch.cat(list(f))
        f = f.reshape(int(batch["image_grid_thw"].shape[0]), -1, f.shape[-1]).float()
        spread = (f.std(0).mean() / f.std().clamp_min(1e-12)).item()
    return {"img_gap": round(l2.item() - l1.item(), 4), "ans_acc_right": round(a1, 4),
            "ans_acc_shuffled": round(a2, 4), "feat_spread": round(spread, 4)}


def freeze_vision_encoder(model, merger: bool = False) -> int:
    """Freeze the vision encoder (patch embedding, position embedding, ViT blocks, norms,
    downsample conv) at its current weights, and with ``merger=True`` the merger
    (projector) too, so that only the language model trains. Returns the number of
    frozen parameters.

    Why (measured, 2 CPU cores): trained jointly from scratch, the vision tower collapsed
    (every image gave the same visual tokens, feature spread 5e-3). With the encoder frozen
    but the merger trained (LLaVA stage-1 style, Liu et al. 2023, arXiv 2304.08485), the
    merger collapsed onto colour instead: after 1,900 steps 95 % of the variance of its
    output tokens was colour, 5 % shape and 0 % position (48 / 25 / 16 % at its input), and
    the model named shapes and columns at chance even in one-object scenes. So the tower is
    trained on its own first (:func:`pretrain_vision`, dense per-cell labels) and then frozen
    whole while the language model learns to read it, as the real recipe freezes nothing
    but starts from a pretrained encoder; :func:`variance_shares` checks what it keeps.
    """
    n = 0
    for name, p in model.model.visual.named_parameters():
        if merger or not name.startswith("merger."):
            p.requires_grad_(False)
            n += p.numel()
    return n


def variance_shares(model, processor, n: int = 300, seed: int = 91) -> dict[str, float]:
    """Share of the variance of the visual tokens (the merger's output, one per 28-px cell)
    explained by the colour, shape, column and row of the object in that cell, on ``n``
    one-or-two-object scenes (level-1 ``shapes``): between-class over total sum of squares.
    A merger that throws away shape or position shows ~0 there."""
    import numpy as np
    import torch

    scenes = [T.make_scene("shapes", 1, seed, i) for i in range(n)]
    cap: dict = {}
    hook = model.model.visual.merger.register_forward_hook(lambda m, a, o: cap.__setitem__("x", o))
    vis = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt")
    try:
        with torch.no_grad():
            model.model.get_image_features(vis["pixel_values"].to(model.dtype), vis["image_grid_thw"])
    finally:
        hook.remove()
    f = cap["x"].float().reshape(n, IMAGE_TOKENS, -1).numpy()
    xs, labels = [], {"colour": [], "shape": [], "col": [], "row": []}
    for i, s in enumerate(scenes):
        for o in s.description["objects"]:
            xs.append(f[i, o["row"] * T.GRID + o["col"]])
            labels["colour"].append(o["color"]); labels["shape"].append(o["shape"])
            labels["col"].append(o["col"]); labels["row"].append(o["row"])
    x = np.array(xs)
    mean = x.mean(0)
    total = ((x - mean) ** 2).sum()
    out = {}
    for k, ys in labels.items():
        y = np.array(ys)
        out[k] = round(float(sum(((x[y == c].mean(0) - mean) ** 2).sum() * (y == c).sum()
                                 for c in np.unique(y)) / total), 3)
    return out


def sincos_position_embedding(model, std: float = 0.5) -> None:
    """Replace the vision encoder's learned absolute position embedding (``(64, 128)``:
    one row per 14-px patch of the 8×8 grid) by a fixed 2-D sine-cosine embedding (MAE,
    He et al. 2021, arXiv 2111.06377 §A.1: half the channels encode the row, half the
    column) rescaled to standard deviation ``std``.

    Why: with the encoder frozen at its random init, the default 0.02-std random position
    rows are drowned by the patch content, so the visual token of an *occupied* cell does
    not say where it is (measured with a linear probe on the merger's input: column 62 %
    on occupied cells, 100 % with this embedding at std 0.5; colour/shape/size probes
    unchanged). Without it the *position* task family stayed at chance.
    """
    import torch

    emb = model.model.visual.embeddings.position_embedding.weight
    n, dim = emb.shape
    g = math.isqrt(n)

    def axis(pos: torch.Tensor, d: int) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos[:, None].double() * omega[None]
        return torch.cat([out.sin(), out.cos()], 1)

    hh, ww = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    pe = torch.cat([axis(hh.reshape(-1), dim // 2), axis(ww.reshape(-1), dim // 2)], 1).float()
    with torch.no_grad():
        emb.copy_(pe * (std / pe.std()))


def cancel_background(model, processor) -> None:
    """Shift the patch embedding's bias so that a blank canvas embeds to exactly zero.

    Why (measured, 2 CPU cores): the scenes are mostly white, and white is far from the
    CLIP mean (+1.9 after normalisation), so every patch shares one large input
    component. Adam's first updates of the patch embedding follow that component and turn
    it into a brightness detector: within 10 steps a nearest-class-mean probe of colour on
    its output fell from 70 % to 30 %, and after 600 steps the trained tower named the
    colour of 40 % of the shapes (chance 17 %) while it learnt shape. Rendering on a grey
    canvas near the CLIP mean cured it (99.6 % after 150 steps), which confirms the cause;
    the canvas stays white, and instead this cancellation plus a tenth of the learning rate
    for the patch embedding (:func:`pretrain_vision`) get there: 97 % after 150 steps of 64
    images, 99.6 % after 600. Each alone helps less (300 steps of 32 images: both 82 %,
    low LR alone 63 %, neither 20 %).
    """
    import torch
    from PIL import Image

    blank = Image.new("RGB", (T.IMAGE_SIZE, T.IMAGE_SIZE), T.BACKGROUND)
    pv = processor.image_processor(images=[blank], return_tensors="pt")["pixel_values"]
    pe = model.model.visual.patch_embed
    with torch.no_grad():
        pe.proj.bias.sub_(pe(pv.to(pe.proj.weight.dtype)).mean(0))


#: Heads of the dense vision pretraining (:func:`pretrain_vision`): name → classes (1 = regression).
VISION_HEADS = {"content": len(T.CELL_CONTENT), "colour": len(T.CELL_COLOURS), "row": T.GRID, "col": T.GRID,
                "size": 1}
SIZE_MEAN, SIZE_SCALE = 16.0, 4.0  # px; size targets are (size - mean) / scale


def _cell_targets(scenes: list[T.Scene]):
    import torch

    labs = [T.cell_labels(s.description) for s in scenes]
    n = len(scenes)
    cells = torch.arange(T.GRID * T.GRID).repeat(n)
    return {"content": torch.tensor([x for lab in labs for x in lab["content"]]),
            "colour": torch.tensor([x for lab in labs for x in lab["colour"]]),
            "size": torch.tensor([x for lab in labs for x in lab["size"]]),
            "row": cells // T.GRID, "col": cells % T.GRID}


def _vision_loss(heads, feats, tgt):
    """Sum of the per-cell losses and the accuracies (see :func:`pretrain_vision`)."""
    import torch
    import torch.nn.functional as F

    out = {k: h(feats) for k, h in heads.items()}
    m = ~torch.isnan(tgt["size"])
    loss = sum(F.cross_entropy(out[k], tgt[k]) for k in ("content", "colour", "row", "col"))
    if m.any():
        loss = loss + F.smooth_l1_loss(out["size"][m, 0], (tgt["size"][m] - SIZE_MEAN) / SIZE_SCALE)
    with torch.no_grad():
        ct = tgt["content"]
        shape = (ct >= 1) & (ct <= len(T.SHAPES))
        hit = {k: out[k].argmax(-1) == tgt[k] for k in ("content", "colour", "row", "col")}
        acc = {"shape": hit["content"][shape].float().mean().item(),
               "symbol": hit["content"][ct > len(T.SHAPES)].float().mean().item(),
               "empty": hit["content"][ct == 0].float().mean().item(),
               "colour": hit["colour"][shape].float().mean().item(),
               "row": hit["row"].float().mean().item(), "col": hit["col"].float().mean().item(),
               "size_mae_px": ((out["size"][m, 0] * SIZE_SCALE + SIZE_MEAN) - tgt["size"][m]).abs().mean().item()
               if m.any() else float("nan")}
    return loss, {k: round(v, 3) for k, v in acc.items()}


def pretrain_vision(model, processor, *, steps: int = 800, minutes: float = 5.0, batch: int = 64,
                    lr: float = 1e-3, patch_lr: float = 1e-4, seed: int = 0, log_every: int = 100,
                    skip: set[str] | None = None) -> dict[str, float]:
    """Pretrain the vision tower (encoder + merger) on dense per-cell labels, then keep it.

    The GLM-4.1V recipe starts from a pretrained vision encoder (AIMv2-Huge, arXiv
    2507.01006 §3); this is the miniature of that step. Each merged visual token (one
    28-px cell, :func:`studio.engine.workshop.tasks.cell_labels`) gets linear heads for its content
    (empty / circle / square / triangle / digit / operator), colour, row, column and
    object size, trained with cross-entropy (+ smooth-L1 for size) on fresh scenes of every
    family and level (held-out scenes in ``skip`` are never drawn). The heads are thrown
    away afterwards: what stays is a tower whose tokens carry those attributes *linearly*,
    which is what a small language model can learn to read quickly.

    Why (measured): a frozen random tower keeps the attributes only tangled (least-squares
    probes on its tokens: colour 70 %, shape 68 %; pretrained: 99 %, 96 %); on it, 73
    minutes of base pretraining left "How many red circles?" at the always-0 baseline,
    while on the pretrained tower 20 minutes answered it directly 92 % of the time. And
    training the tower only through the language model's loss collapsed it onto colour. The
    patch embedding trains at ``patch_lr`` (see :func:`cancel_background`). The shipped
    recipe (800 steps, 4 min) reaches shape 97.7 %, colour 100 %, digits/operators 100 %,
    row/column 100 % and a size error of 0.24 px on held-out cells.

    Args:
        steps: optimizer steps of ``batch`` images (cosine LR after 20 warm-up steps).
        minutes: wall-clock cap (0 = none); the LR follows the larger of step and time progress.

    Returns:
        Held-out metrics on 256 scenes of ``seed + 1000``: ``shape``, ``symbol``, ``empty``,
        ``colour``, ``row``, ``col`` (accuracies in [0, 1]) and ``size_mae_px``.
    """
    import torch

    vis = model.model.visual
    dim = vis.config.out_hidden_size
    torch.manual_seed(seed)
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(dim, n) for k, n in VISION_HEADS.items()})
    patch = list(vis.patch_embed.parameters())
    pid = {id(p) for p in patch}
    rest = [p for p in vis.parameters() if id(p) not in pid] + list(heads.parameters())
    for p in vis.parameters():
        p.requires_grad_(True)
    groups = [dict(params=rest, lr=lr, base=lr), dict(params=patch, lr=patch_lr, base=patch_lr)]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    held = T.generate_scenes(256, seed + EVAL_SEED_OFFSET)
    held_vis = processor.image_processor(images=[s.image for s in held], return_tensors="pt")
    held_tgt = _cell_targets(held)
    skip = skip or set()
    vis.train()
    t0 = time.time()
    done = 0
    for step in range(steps):
        prog = step / steps
        if minutes:
            prog = max(prog, (time.time() - t0) / (minutes * 60))
        if prog >= 1.0:
            print(f"[vision] time budget of {minutes} min reached after {step} steps", flush=True)
            break
        done = step + 1
        rng = random.Random(f"vision/{seed}/{step}")
        scenes = []
        while len(scenes) < batch:
            s = T.make_scene(rng.choice(T.FAMILIES), rng.choice(T.LEVELS), seed + 2000, step * 1000 + len(scenes),
                             render_image=False)
            if s.key() not in skip:
                s.image = T.render(s.description)
                scenes.append(s)
        v = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt")
        warm = min(1.0, (step + 1) / 20)
        for g in opt.param_groups:
            g["lr"] = g["base"] * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * prog)))
        feats = vis(v["pixel_values"], v["image_grid_thw"]).pooler_output
        loss, acc = _vision_loss(heads, feats, _cell_targets(scenes))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(vis.parameters()) + list(heads.parameters()), 1.0)
        opt.step()
        if (step + 1) % log_every == 0:
            print(f"[vision] step {step + 1}/{steps} loss {loss.item():.3f} {acc} | {time.time() - t0:.0f}s",
                  flush=True)
    vis.eval()
    with torch.no_grad():
        feats = vis(held_vis["pixel_values"], held_vis["image_grid_thw"]).pooler_output
        _, acc = _vision_loss(heads, feats, held_tgt)
    acc["steps"], acc["minutes"] = done, round((time.time() - t0) / 60, 1)
    print(f"[vision] held-out per-cell metrics: {acc}", flush=True)
    return acc


def scale_visual_tokens(model, processor, target: float = 0.5, seed: int = 0) -> float:
    """Data-dependent init of the merger's last layer (LSUV-style, Mishkin & Matas 2016,
    arXiv 1511.06422): rescale ``merger.down_proj`` so the visual tokens it outputs have
    standard deviation ``target`` on a few rendered scenes. At the default 0.02-std init the
    visual tokens have std ~0.007, and in the language model's residual stream they are
    drowned by the first layer's outputs, so their image content never reaches the
    answers. Returns the factor applied."""
    import torch

    scenes = T.generate_scenes(8, seed + 777)
    vis = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt")
    with torch.no_grad():
        out = model.model.get_image_features(vis["pixel_values"], vis["image_grid_thw"])
        f = getattr(out, "pooler_output", out)
        if isinstance(f, (tuple, list)):
            f = torch.cat(list(f))
        factor = target / f.float().std().clamp_min(1e-12).item()
        model.model.visual.merger.down_proj.weight.mul_(factor)
    return factor


def save(model, processor, out: Path, meta: dict) -> None:
    """``save_pretrained`` (safetensors) + processor + ``studio_model.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    share_weights(out)
    (out / "studio_model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def ship(folder: str | Path) -> Path:
    """Re-save a finished checkpoint with bfloat16 weights (half the bytes: both toy models
    fit the repository's 25 MB budget). Loading on a CPU upcasts to float32 as usual."""
    import torch
    from transformers import AutoModelForImageTextToText

    folder = Path(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    share_weights(folder)
    return folder


def train(stage: str, out: str | Path, *, seed: int = 0, init: str | None = None, steps: int | None = None,
          lr: float | None = None, batch: int | None = None, threads: int = 2, save_minutes: float = 5.0,
          minutes: float | None = None, resume: bool = False, log_every: int = 20, eval_every: int = 200,
          command: str = "", freeze_vision: bool | None = None, min_gap: float = 0.0,
          visual_scale: float = 0.5, position_std: float = 1.0, freeze_merger: bool | None = None,
          vision_steps: int | None = None, vision_minutes: float | None = None) -> Path:
    """Train one stage and save it into ``out``.

    Args:
        stage: ``"base"`` (from scratch, captions + Q/A text) or ``"thinking"`` (SFT from
            ``init`` into the think/answer/box format).
        init: model folder to start from (required for ``thinking``).
        steps, lr, batch: override :data:`STAGES` defaults.
        minutes: wall-clock budget. Progress (LR cosine, curriculum) is the larger of
            step/steps and elapsed/budget, and training ends at 100 %: on a slow or shared
            CPU the run still ends on time with a fully decayed LR (fewer steps). ``None``
            or 0: purely step-based, bit-reproducible on one machine.
        resume: continue from the checkpoint in ``out`` and the resume folder.
        freeze_vision: freeze the vision encoder except the merger (default per stage: on).
        freeze_merger: freeze the merger too (default per stage: on; see
            :func:`freeze_vision_encoder`).
        eval_every: every this many steps, log the held-out probe loss and the
            :func:`vision_diagnostic` (``img_gap``, ``feat_spread``).
        visual_scale: for a model built from scratch, the std its visual tokens are scaled
            to (:func:`scale_visual_tokens`; 0 = keep the default init).
        position_std: for a model built from scratch, the std of the fixed sine-cosine
            vision position embedding (:func:`sincos_position_embedding`; 0 = keep the
            random one).
        vision_steps, vision_minutes: for a model built from scratch, steps and wall-clock cap
            of the dense vision pretraining that runs before the language model trains
            (:func:`pretrain_vision`; default per stage; 0 steps = keep the random tower).
        min_gap: if > 0, stop early (and say so) when the image gap is still below this many
            nats/token at the first diagnostic after 30 % of the run: the model ignores images.

    Returns:
        The output folder. Loss and probe metrics are appended to ``<out>/../.<name>.train.jsonl``
        style log in the resume folder and printed.

    Raises:
        InputError: unknown stage, or ``thinking`` without ``--init``.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from studio.engine.infer.tiny import cache_root
    from studio.errors import InputError

    if stage not in STAGES:
        raise InputError(f"Unknown stage {stage!r}; use base or thinking.")
    if stage == "thinking" and not init and not resume:
        raise InputError("The thinking stage starts from a base model: pass --init studio/assets/toy-base.")
    d = STAGES[stage]
    vision_metrics = None
    steps, lr, batch = steps or d.steps, lr or d.lr, batch or d.batch
    minutes = d.minutes if minutes is None else minutes
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out)
    work = cache_root() / "toy-train" / f"{stage}-{out.resolve().name}"
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "train.jsonl"

    if resume and (out / "model.safetensors").is_file():
        processor = AutoProcessor.from_pretrained(out)
        model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    elif init:
        processor = AutoProcessor.from_pretrained(init)
        model = AutoModelForImageTextToText.from_pretrained(init, dtype=torch.float32)
    else:
        processor = build_toy_processor()
        model = build_toy_model(processor.tokenizer, seed=seed)
        if position_std:
            sincos_position_embedding(model, position_std)
        vision_steps = d.vision_steps if vision_steps is None else vision_steps
        if vision_minutes is None:  # --minutes 0 (step-based, reproducible) applies to both phases
            vision_minutes = d.vision_minutes if minutes else 0.0
        if vision_steps:
            cancel_background(model, processor)
            vision_metrics = pretrain_vision(model, processor, steps=vision_steps, minutes=vision_minutes,
                                             seed=seed, skip=eval_keys(seed))
        if visual_scale:
            print(f"[{stage}] visual tokens scaled ×{scale_visual_tokens(model, processor, visual_scale, seed):.1f} "
                  f"to std {visual_scale}", flush=True)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    freeze_vision = d.freeze_vision if freeze_vision is None else freeze_vision
    freeze_merger = d.freeze_merger if freeze_merger is None else freeze_merger
    frozen = freeze_vision_encoder(model, merger=freeze_merger and freeze_vision) if freeze_vision else 0
    shares = variance_shares(model, processor)
    print(f"[{stage}] visual-token variance shares: {shares}", flush=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    start, prior_s = 0, 0.0
    if resume and (work / "resume.pt").is_file():
        state = torch.load(work / "resume.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        start, prior_s = int(state["step"]), float(state.get("elapsed_s", 0.0))
    elif not resume and log_path.exists():
        log_path.unlink()

    def progress(k: int) -> float:
        """Fraction of the run done: by steps, or by wall clock when ``minutes`` is set
        (whichever is further), so a slow shared CPU still ends with a decayed LR."""
        p = k / steps
        if minutes:
            p = max(p, (prior_s + time.time() - t0) / (minutes * 60))
        return min(p, 1.0)

    def lr_at(k: int, p: float) -> float:
        if k < d.warmup:
            return lr * (k + 1) / d.warmup
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    stream = SceneStream(seed, batch, eval_keys(seed))
    probe_rng = random.Random(f"probe/{seed}")
    probe_scenes = T.generate_scenes(48, seed + EVAL_SEED_OFFSET)
    probe = make_batch(processor, probe_scenes, stage, d.max_questions, probe_rng)
    diag_batch = make_batch(processor, probe_scenes[:16], stage, d.max_questions, random.Random(f"diag/{seed}"))
    meta = {"kind": "workshop-toy", "stage": stage, "seed": seed, "command": command,
            "init": init, "params": n_params, "steps": steps, "lr": lr, "batch": batch,
            "minutes_budget": minutes, "frozen_vision_params": frozen,
            "position_std": position_std if not init else None, "frozen_merger": bool(freeze_merger),
            "visual_scale": visual_scale if not init else None, "variance_shares_start": shares,
            "vision_pretraining": vision_metrics}
    print(f"[{stage}] {n_params / 1e6:.2f} M parameters; steps {start}..{steps}, batch {batch}, lr {lr}",
          flush=True)
    t0 = last_save = time.time()
    ema = None
    done = start
    with log_path.open("a", encoding="utf-8") as log:
        for step in range(start, steps):
            prog = progress(step)
            if prog >= 1.0:
                print(f"[{stage}] time budget of {minutes} min reached after {step} steps", flush=True)
                break
            rng = random.Random(f"batch/{seed}/{step}")
            b = make_batch(processor, stream.scenes(step, prog), stage, d.max_questions, rng)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, prog)
            loss, acc = forward_loss(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            done = step + 1
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            rec = {"step": step + 1, "loss": round(loss.item(), 4), "answer_acc": round(acc, 4),
                   "lr": lr_at(step, prog), "progress": round(prog, 4),
                   "elapsed_s": round(prior_s + time.time() - t0, 1)}
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                model.eval()
                with torch.no_grad():
                    vl, va = forward_loss(model, probe)
                diag = vision_diagnostic(model, diag_batch)
                diag.update(family_accuracy(model, probe, [sc.family for sc in probe_scenes]))
                model.train()
                rec.update(val_loss=round(vl.item(), 4), val_answer_acc=round(va, 4), **diag)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if (step + 1) % log_every == 0 or "val_loss" in rec:
                print(f"[{stage}] step {step + 1}/{steps} loss {ema:.3f} ans_acc {acc:.2f}"
                      + (f" | val_loss {rec['val_loss']:.3f} val_ans_acc {rec['val_answer_acc']:.3f}"
                         + f" | img_gap {rec['img_gap']:+.3f} acc right/shuffled {rec['ans_acc_right']:.2f}/"
                           f"{rec['ans_acc_shuffled']:.2f} feat_spread {rec['feat_spread']:.3f} | "
                           + " ".join(f"{k[4:]} {v:.2f}" for k, v in rec.items() if k.startswith("acc_"))
                         if "val_loss" in rec else "") + f" | {rec['elapsed_s']:.0f}s", flush=True)
                if min_gap > 0 and "img_gap" in rec and prog >= 0.3 and rec["img_gap"] < min_gap:
                    print(f"[{stage}] stopping: image gap {rec['img_gap']:.3f} < {min_gap} after "
                          f"{prog:.0%} of the run (the answers ignore the image)", flush=True)
                    break
            if time.time() - last_save > save_minutes * 60:
                model.eval()
                save(model, processor, out, dict(meta, step=step + 1, finished=False))
                torch.save({"optimizer": opt.state_dict(), "step": step + 1,
                            "elapsed_s": prior_s + time.time() - t0}, work / "resume.pt")
                model.train()
                last_save = time.time()
    model.eval()
    save(model, processor, out, dict(meta, step=done, finished=True,
                                     minutes=round((prior_s + time.time() - t0) / 60, 1)))
    ship(out)
    print(f"[{stage}] saved {out} (bfloat16 weights) after {(time.time() - t0) / 60:.1f} min", flush=True)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """CLI arguments shared by ``python -m studio.engine.workshop.toy_train`` and ``studio toy-train``."""
    p.add_argument("stage", choices=sorted(STAGES), help="base (pretraining) or thinking (SFT)")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--init", default=None, help="model folder to start from (thinking: the toy-base)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default per stage)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch", type=int, default=None, help="images per step")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock budget (default per stage); LR and curriculum follow the larger of "
                        "step and time progress; 0 = step-based only (bit-reproducible)")
    p.add_argument("--save-minutes", type=float, default=5.0, help="checkpoint interval")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--eval-every", type=int, default=None, help="steps between probe + image-gap diagnostics")
    p.add_argument("--train-vision", action="store_true",
                   help="train the whole vision tower with the language model (default: the tower is "
                        "frozen after the vision pretraining)")
    p.add_argument("--visual-scale", type=float, default=0.5,
                   help="from scratch: scale the merger so visual tokens start with this std (0 = off)")
    p.add_argument("--train-merger", action="store_true",
                   help="train the merger with the language model, the rest of the vision tower frozen "
                        "(default: the whole tower is frozen while the language model trains)")
    p.add_argument("--position-std", type=float, default=1.0,
                   help="from scratch: fixed sine-cosine vision position embedding with this std (0 = random)")
    p.add_argument("--vision-steps", type=int, default=None,
                   help="from scratch: steps of dense vision pretraining before the language model trains "
                        "(default per stage; 0 = keep the random vision tower)")
    p.add_argument("--vision-minutes", type=float, default=None,
                   help="wall-clock cap of the vision pretraining (default per stage; 0 with --minutes 0)")
    p.add_argument("--min-gap", type=float, default=0.0,
                   help="stop early if the image gap (nats/token) is below this after 30%% of the run")


def run(args: argparse.Namespace) -> int:
    """Run one training stage from parsed arguments."""
    train(args.stage, args.out, seed=args.seed, init=args.init, steps=args.steps, lr=args.lr,
          batch=args.batch, threads=args.threads, save_minutes=args.save_minutes,
          minutes=args.minutes, resume=args.resume, eval_every=args.eval_every or 100,
          freeze_vision=False if args.train_vision else None, min_gap=args.min_gap,
          visual_scale=args.visual_scale, position_std=args.position_std,
          freeze_merger=False if args.train_merger else None,
          vision_steps=args.vision_steps, vision_minutes=args.vision_minutes,
          command="python -m studio.engine.workshop.toy_train " + " ".join(sys.argv[1:]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m studio.engine.workshop.toy_train",
        description="Train the workshop model on CPU: stage 'base' from scratch (vision pretraining, then "
                    "captions and plain Q/A), stage 'thinking' from --init (SFT into the think/answer format). "
                    f"Defaults: base {STAGES['base'].vision_steps} vision + {STAGES['base'].steps} steps "
                    f"(cap {STAGES['base'].minutes:g} min), thinking {STAGES['thinking'].steps} steps "
                    f"(cap {STAGES['thinking'].minutes:g} min).")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
