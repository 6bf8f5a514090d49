"""The workshop model: training sequences, the shipped toy checkpoints, and their quality floor."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE_DATA

ASSETS = REPO / "studio" / "assets"
BASE, THINKING = ASSETS / "toy-base", ASSETS / "toy-thinking"
EVAL = SAMPLE_DATA / "workshop" / "eval.jsonl"


def _need(folder: Path) -> None:
    if not (folder / "model.safetensors").is_file() or not (folder / "studio_model.json").is_file():
        pytest.skip(f"{folder} is not built; run python -m studio.engine.workshop.toy_train (see README)")


@pytest.fixture(scope="module")
def processor():
    from studio.engine.infer.tiny import build_processor

    return build_processor()


@pytest.mark.parametrize("stage", ["base", "thinking"])
def test_training_sequences_match_the_chat_template(processor, stage):
    """The hand-built token ids equal the official template + processor expansion, and the
    loss falls only on answers / assistant turns (never on the image or the question)."""
    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.toy_train import ANSWER, LOSS, NO_LOSS, chat_messages, encode, make_batch, segments

    tok = processor.tokenizer
    scenes = T.generate_scenes(8, seed=11)
    for s in scenes:
        ids, kinds, mm = encode(tok, segments(s, stage, "chat", 4))
        text = processor.apply_chat_template(chat_messages(s, stage, 4), tokenize=False) + "<|endoftext|>"
        ref = processor(text=[text], images=[s.image], return_tensors="pt")
        assert ids == ref["input_ids"][0].tolist()
        assert mm == ref["mm_token_type_ids"][0].tolist()
        img = tok.convert_tokens_to_ids("<|image|>")
        assert all(k == NO_LOSS for i, k in zip(ids, kinds) if i == img)
        answers = tok.decode([i for i, k in zip(ids, kinds) if k == ANSWER])
        assert answers == "".join(it.answer for it in s.items[:4])
        trained = tok.decode([i for i, k in zip(ids, kinds) if k in (LOSS, ANSWER)], skip_special_tokens=False)
        assert s.items[0].question not in trained
    b = make_batch(processor, scenes, stage, 4, random.Random(0))
    assert b["pixel_values"].shape == (8 * 64, 1176) and b["image_grid_thw"].tolist() == [[1, 8, 8]] * 8
    assert b["labels"].shape == b["input_ids"].shape and (b["labels"] != -100).any()


def test_toy_tokenizer_has_the_task_words_and_is_the_shipped_one():
    """The workshop tokenizer's BPE saw the task text, so task words are single tokens
    (the embedded tokenizer spells "Red" R·e·d), GLM's special and reasoning tokens are
    unchanged, and rebuilding it gives the shipped vocabulary exactly."""
    from studio.engine.infer.tiny import REASONING_TOKENS, SPECIAL_TOKENS, build_processor
    from studio.engine.workshop.toy_train import build_toy_processor

    tok, emb = build_toy_processor().tokenizer, build_processor().tokenizer
    text = "Red circles: row 4 col 2. That is 1."
    assert len(tok(text)["input_ids"]) == 12 < len(emb(text)["input_ids"])
    for t in SPECIAL_TOKENS + REASONING_TOKENS:
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1
    assert tok.convert_tokens_to_ids("<|image|>") != tok.unk_token_id
    for folder in (BASE, THINKING):
        if (folder / "tokenizer.json").is_file():
            from transformers import AutoTokenizer

            assert AutoTokenizer.from_pretrained(folder).get_vocab() == tok.get_vocab(), folder


def test_base_raw_text_has_caption_and_answers(processor):
    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.toy_train import ANSWER, encode, segments

    s = T.make_scene("shapes", 2, 0, 3)
    ids, kinds, _ = encode(processor.tokenizer, segments(s, "base", "raw", 6))
    text = processor.tokenizer.decode(ids, skip_special_tokens=False)
    assert text.startswith("[gMASK]<sop><|begin_of_image|>") and "<think>" not in text
    assert "The image shows " in text and f"Question: {s.items[0].question}\nAnswer: {s.items[0].answer}" in text
    assert processor.tokenizer.decode([i for i, k in zip(ids, kinds) if k == ANSWER]).split() == \
        [it.answer for it in s.items[:6]]


def test_vision_diagnostic_and_frozen_encoder(processor):
    """The image-gap diagnostic swaps every row's image for another's, and freezing keeps
    only the merger of the vision tower trainable."""
    import torch

    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.toy_train import (build_toy_model, freeze_vision_encoder, make_batch, shuffled_images,
                                         vision_diagnostic)

    scenes = T.generate_scenes(3, seed=5)
    b = make_batch(processor, scenes, "base", 3, random.Random(0))
    sh = shuffled_images(b)["pixel_values"].reshape(3, 64, -1)
    pv = b["pixel_values"].reshape(3, 64, -1)
    assert all(torch.equal(sh[i], pv[(i - 1) % 3]) for i in range(3)) and not torch.equal(sh[0], pv[0])
    model = build_toy_model(processor.tokenizer, seed=0)
    n_frozen = freeze_vision_encoder(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert n_frozen > 0 and any(".merger." in n for n in trainable)
    assert not any("visual" in n and ".merger." not in n for n in trainable)
    model.eval()
    d = vision_diagnostic(model, b)
    assert set(d) == {"img_gap", "ans_acc_right", "ans_acc_shuffled", "feat_spread"}
    assert 0.0 < d["feat_spread"] < 2.0  # a random encoder separates images


def test_frozen_merger_keeps_shape_and_position_in_the_visual_tokens(processor):
    """While the language model trains, the vision tower is frozen whole; a fresh random
    tower's visual tokens carry shape and position, not only colour (the merger trained
    through the language model collapsed to 95 % colour / 0 % position). The shipped,
    pretrained tower is checked by linear probes below."""
    from studio.engine.workshop.toy_train import (build_toy_model, freeze_vision_encoder, scale_visual_tokens,
                                         sincos_position_embedding, variance_shares)

    model = build_toy_model(processor.tokenizer, seed=0)
    sincos_position_embedding(model, 1.0)
    scale_visual_tokens(model, processor, 0.5)
    n = freeze_vision_encoder(model, merger=True)
    assert n == sum(p.numel() for p in model.model.visual.parameters())
    assert not any(p.requires_grad for p in model.model.visual.parameters())
    assert any(p.requires_grad for p in model.model.language_model.parameters())
    fresh = variance_shares(model.eval(), processor, n=120)
    assert min(fresh.values()) >= 0.1 and fresh["colour"] <= 0.5, fresh


def _column_probe(model, processor, scenes) -> float:
    """Held-out accuracy of a least-squares linear probe that reads the column of an
    *occupied* cell from the frozen vision features (the merger's input)."""
    import torch

    cap = {}
    hook = model.model.visual.merger.register_forward_pre_hook(lambda m, a: cap.__setitem__("x", a[0]))
    vis = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt")
    with torch.no_grad():
        model.model.get_image_features(vis["pixel_values"], vis["image_grid_thw"])
    hook.remove()
    f = cap["x"].reshape(len(scenes), 16, -1)
    xs, ys = [], []
    for i, s in enumerate(scenes):
        for o in s.description["objects"]:
            xs.append(f[i, o["row"] * 4 + o["col"]])
            ys.append(o["col"])
    x = torch.cat([torch.stack(xs), torch.ones(len(xs), 1)], 1)
    y = torch.nn.functional.one_hot(torch.tensor(ys), 4).float()
    n = len(xs) // 2
    w = torch.linalg.solve(x[:n].T @ x[:n] + 1e-2 * torch.eye(x.shape[1]), x[:n].T @ y[:n])
    return ((x[n:] @ w).argmax(1) == y[n:].argmax(1)).float().mean().item()


def test_sincos_position_embedding_makes_object_position_readable(processor):
    """The frozen random encoder's default position rows (std 0.02) are drowned by the
    patch content: a linear probe cannot read an occupied cell's column. The fixed 2-D
    sine-cosine embedding makes it readable (measured 62 % → 100 % on 1,300 objects)."""
    import torch

    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.toy_train import build_toy_model, sincos_position_embedding

    scenes = [s for s in T.generate_scenes(240, seed=7) if s.description["kind"] == "shapes"]
    model = build_toy_model(processor.tokenizer, seed=0).eval()
    before = _column_probe(model, processor, scenes)
    sincos_position_embedding(model, 0.5)
    pe = model.model.visual.embeddings.position_embedding.weight.detach().reshape(8, 8, -1)
    assert abs(pe.std().item() - 0.5) < 1e-3
    assert torch.allclose(pe[0, :, :64], pe[5, :, :64]) is False and torch.allclose(pe[:, 0, :64], pe[:, 5, :64])
    after = _column_probe(model, processor, scenes)
    assert after >= 0.95 and after >= before + 0.15, (before, after)


def _cell_probe(model, processor, fit, test) -> dict[str, float]:
    """Held-out accuracy of least-squares linear probes that read each cell's content
    (empty/shape/digit/operator), on shape cells its colour and shape, and on occupied
    cells its row and column, from the visual tokens (the merger's output, one per cell)."""
    import torch

    from studio.engine.workshop import tasks as T

    def feats(scenes):
        vis = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt")
        with torch.no_grad():
            f = model.model.visual(vis["pixel_values"].to(model.dtype), vis["image_grid_thw"]).pooler_output
        labs = [T.cell_labels(s.description) for s in scenes]
        x = torch.cat([f.float(), torch.ones(f.shape[0], 1)], 1)
        return x, torch.tensor([k for lab in labs for k in lab["content"]]), \
            torch.tensor([k for lab in labs for k in lab["colour"]])

    (xa, ca, la), (xb, cb, lb) = feats(fit), feats(test)
    out = {}
    for name, ya, yb, ma, mb in [("content", ca, cb, ca >= 0, cb >= 0),
                                 ("colour", la, lb, (ca >= 1) & (ca <= 3), (cb >= 1) & (cb <= 3))]:
        y = torch.nn.functional.one_hot(ya[ma], int(max(ya.max(), yb.max())) + 1).float()
        w = torch.linalg.solve(xa[ma].T @ xa[ma] + 1e-2 * torch.eye(xa.shape[1]), xa[ma].T @ y)
        out[name] = ((xb[mb] @ w).argmax(1) == yb[mb]).float().mean().item()
    cells_a, cells_b = torch.arange(len(ca)) % 16, torch.arange(len(cb)) % 16
    for name, ya, yb, ma, mb in [("shape", ca, cb, (ca >= 1) & (ca <= 3), (cb >= 1) & (cb <= 3)),
                                 ("row", cells_a // 4, cells_b // 4, ca > 0, cb > 0),
                                 ("col", cells_a % 4, cells_b % 4, ca > 0, cb > 0)]:
        y = torch.nn.functional.one_hot(ya[ma], int(max(ya.max(), yb.max())) + 1).float()
        w = torch.linalg.solve(xa[ma].T @ xa[ma] + 1e-2 * torch.eye(xa.shape[1]), xa[ma].T @ y)
        out[name] = ((xb[mb] @ w).argmax(1) == yb[mb]).float().mean().item()
    return out


def test_cancel_background_zeroes_a_blank_canvas(processor):
    import torch
    from PIL import Image

    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.toy_train import build_toy_model, cancel_background

    model = build_toy_model(processor.tokenizer, seed=0)
    blank = processor.image_processor(images=[Image.new("RGB", (112, 112), T.BACKGROUND)], return_tensors="pt")
    pe = model.model.visual.patch_embed
    before = pe(blank["pixel_values"]).abs().max().item()
    cancel_background(model, processor)
    after = pe(blank["pixel_values"]).abs().max().item()
    assert before > 0.1 and after < 1e-4, (before, after)
    scene = processor.image_processor(images=[T.make_scene("shapes", 1, 0, 0).image], return_tensors="pt")
    assert pe(scene["pixel_values"]).abs().max().item() > 0.1  # content still embeds


@pytest.mark.slow
def test_vision_pretraining_learns_colour_only_with_the_canvas_fixes(processor):
    """Measured cause of the colour loss: 300 dense-pretraining steps of 32 images name the
    colour of 82 % of held-out shapes with both fixes (blank canvas cancelled, patch
    embedding at a tenth of the LR), 63 % with the low LR alone, and 20 % with neither
    (chance 17 %) while shape is learnt either way (84–87 %)."""
    from studio.engine.workshop.toy_train import build_toy_model, cancel_background, pretrain_vision, sincos_position_embedding

    accs = {}
    for fixed in (True, False):
        model = build_toy_model(processor.tokenizer, seed=0)
        sincos_position_embedding(model, 1.0)
        if fixed:
            cancel_background(model, processor)
        accs[fixed] = pretrain_vision(model, processor, steps=300, minutes=0, batch=32, seed=0, log_every=1000,
                                      patch_lr=1e-4 if fixed else 1e-3)
    assert accs[True]["colour"] >= 0.7 and accs[True]["empty"] >= 0.99, accs
    assert accs[False]["colour"] <= 0.45 and accs[False]["shape"] >= 0.7, accs


def test_shipped_vision_tower_reads_every_cell(processor):
    """The shipped toy-base's visual tokens carry each cell's content, colour, shape, row
    and column *linearly* (least-squares probes fitted on 120 held-out scenes, scored on 120
    others); a random tower with the same position embedding does not (measured: content
    0.92, colour 0.70, shape 0.68; a pretrained tower 0.99 / 0.99 / 0.96)."""
    _need(BASE)
    import torch
    from transformers import AutoModelForImageTextToText

    from studio.engine.workshop import tasks as T

    fit, test = T.generate_scenes(120, seed=1001), T.generate_scenes(120, seed=1002)
    model = AutoModelForImageTextToText.from_pretrained(BASE, dtype=torch.float32).eval()
    acc = _cell_probe(model, processor, fit, test)
    assert acc["content"] >= 0.97 and acc["colour"] >= 0.95 and acc["shape"] >= 0.9, acc
    assert acc["row"] >= 0.98 and acc["col"] >= 0.98, acc


@pytest.mark.parametrize("folder,stage", [(BASE, "base"), (THINKING, "thinking")])
def test_shipped_checkpoint_loads_through_models_load(folder, stage):
    _need(folder)
    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    meta = json.loads((folder / "studio_model.json").read_text())
    assert meta["kind"] == "workshop-toy" and meta["stage"] == stage and meta["finished"]
    model, proc = load(ModelSpec(name_or_path=str(folder), device="cpu"))
    assert type(model).__name__ == "Glm4vForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) <= 10_000_000
    assert proc.tokenizer.convert_tokens_to_ids("<|begin_of_box|>") != proc.tokenizer.unk_token_id
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))


def test_shipped_base_answers_depend_on_the_image():
    """Regression test for the vision collapse: on 12 held-out scenes the shipped toy-base's
    loss must rise when every image is swapped for another scene's (measured +2.98
    nats/token, answer accuracy 0.90 vs 0.40 with swapped images; the random-tower recipe
    +0.67 on 48 scenes; the collapsed model and random weights ~0), and its visual tokens
    must differ between images (shipped 0.43; the collapsed tower: 0.005)."""
    _need(BASE)
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.toy_train import EVAL_SEED_OFFSET, make_batch, vision_diagnostic

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(BASE, dtype=torch.float32).eval()
    own = AutoProcessor.from_pretrained(BASE)  # the workshop tokenizer, not the embedded one
    scenes = T.generate_scenes(12, 0 + EVAL_SEED_OFFSET)
    d = vision_diagnostic(model, make_batch(own, scenes, "base", 6, random.Random("test")))
    assert d["img_gap"] >= 1.0, d
    assert d["ans_acc_right"] >= d["ans_acc_shuffled"] + 0.3, d
    assert d["feat_spread"] >= 0.1, d


def test_toy_thinking_writes_the_format_on_held_out_prompts():
    """Greedy `studio eval` on 12 held-out prompts: random weights write no
    <think>/<answer>/box at all (0 %); the shipped model ≥ 80 % (measured 100 % on 480), and
    its accuracy is well above chance (88 % vs 34 % on 480; the random-tower recipe 67 %,
    the collapsed model was at chance)."""
    _need(THINKING)
    from studio.engine.workshop.evaluate import evaluate

    rep = evaluate(str(THINKING), EVAL, n=12, max_new_tokens=120, batch_size=12)
    all_row = rep.groups()[-1]
    assert all_row["n"] == 12 and all_row["format"] >= 0.8, rep.table()
    assert all_row["accuracy"] >= all_row["chance"] + 0.35, rep.table()  # measured 92 % vs 37 %


def test_shipped_assets_are_small():
    _need(THINKING)
    total = sum(p.stat().st_size for d in (BASE, THINKING) for p in d.rglob("*") if p.is_file())
    assert total <= 25 * 2**20


def test_toy_thinking_beats_random_weights_on_held_out_prompts():
    """`studio eval` on 20 held-out prompts: random weights score 0 % format (measured)."""
    _need(THINKING)
    from studio.engine.workshop.evaluate import evaluate

    rep = evaluate(str(THINKING), EVAL, n=20)
    all_row = rep.groups()[-1]
    assert rep.mode == "thinking" and all_row["n"] == 20
    assert all_row["format"] >= 0.8, rep.table()
    assert all_row["accuracy"] >= all_row["chance"] + 0.35, rep.table()  # measured 90 % vs 35 %


def test_toy_base_answers_plainly_above_chance():
    _need(BASE)
    from studio.engine.workshop.evaluate import evaluate

    rep = evaluate(str(BASE), EVAL, n=20, max_new_tokens=12)
    all_row = rep.groups()[-1]
    assert rep.mode == "plain"
    assert all_row["accuracy"] >= all_row["chance"] + 0.3, rep.table()  # measured 85 % vs 35 %


@pytest.mark.slow
def test_train_script_runs_and_saves_a_loadable_checkpoint(tmp_path):
    from studio.config import ModelSpec
    from studio.engine.infer.models import load
    from studio.engine.workshop.toy_train import train

    out = train("base", tmp_path / "b", steps=3, batch=2, minutes=0, command="test", vision_steps=2)
    meta = json.loads((out / "studio_model.json").read_text())
    assert meta["stage"] == "base" and meta["step"] == 3 and meta["finished"]
    assert meta["vision_pretraining"]["steps"] == 2 and 0 <= meta["vision_pretraining"]["colour"] <= 1
    out2 = train("thinking", tmp_path / "t", init=str(out), steps=2, batch=2, minutes=0, command="test")
    model, _ = load(ModelSpec(name_or_path=str(out2), device="cpu"))
    assert json.loads((out2 / "studio_model.json").read_text())["stage"] == "thinking"


def test_chat_check_scenes_are_held_out_balanced_and_counted_from_pixels():
    import numpy as np

    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.evaluate import chat_check_scenes

    scenes = chat_check_scenes(10)
    counts = [c for _, c in scenes]
    assert len(scenes) == 10 and counts.count(0) == 5 and counts.count(1) == 2 and sum(c >= 2 for c in counts) == 3
    from studio.engine.workshop.toy_train import eval_keys

    skipped = eval_keys(0)  # what training never draws
    held = {T.render(s.description).tobytes(): s.key()
            for s in T.generate_scenes(T.HELD_OUT_POOL, 1000, render_image=False)
            if s.description["kind"] == "shapes" and s.key() in skipped}
    from test_tasks import derive  # the generator-independent pixel reader

    for img, count in scenes:
        assert img.tobytes() in held
        assert derive("How many red circles are there?", np.array(img)) == str(count)


def test_held_out_scenes_leave_every_training_cell_populated():
    """Skipping held-out scenes must not starve a small cell: holding out the first 6,000
    scenes removed every level-1 arithmetic scene from training (held-out 85 % → 66 %)."""
    from collections import Counter

    from studio.engine.workshop import tasks as T
    from studio.engine.workshop.toy_train import SceneStream, eval_keys

    skipped = eval_keys(0)
    drawn = T.generate_scenes(1200, 0, render_image=False)
    kept = Counter((s.family, s.difficulty) for s in drawn if s.key() not in skipped)
    assert all(kept[(f, lvl)] >= 15 for f in T.FAMILIES for lvl in T.LEVELS), kept  # of 100 each
    assert sum(T.count_kind(s.description) >= 2 for s in T.generate_scenes(6000, 1000, render_image=False)
               if s.key() in skipped) >= 40  # the chat check's rare scenes are held out
    stream = SceneStream(0, 16, skipped)
    cells = Counter((s.family, s.difficulty) for k in range(40) for s in stream.scenes(k, 0.5))
    assert len(cells) == 12, cells


def test_chat_tab_answers_how_many_red_circles_usually_right():
    """The issue's done-when: the Chat tab's default model and settings answer "How many
    red circles?" with a short thinking trace and a boxed answer that is usually right,
    on held-out scenes of every family: half without a red circle, a quarter with one, a
    quarter with several (always "0" scores 50 %; the previous recipe's model scored 50 %,
    random weights 0 %). Measured on 120: 100 % / 97 % / 3 % — counting several is the known
    gap (README), so only the none/one scenes carry a floor."""
    _need(THINKING)
    from studio.config import ModelSpec
    from studio.engine.workshop.evaluate import chat_check
    from studio.engine.infer.models import default_chat_model, load

    assert default_chat_model() == "toy-thinking"
    c = chat_check(*load(ModelSpec(name_or_path="toy-thinking", device="cpu")), n=20)
    assert c["format"] >= 0.95 and c["thinking_tokens"] < 60, c
    assert c["by_count"]["0"] >= 0.9 and c["by_count"]["1"] >= 0.8, c
    assert c["accuracy"] >= c["zero_baseline"] + 0.2, c
