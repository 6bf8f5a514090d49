"""Development-only diagnostics of a toy run (they never change the weights): does the model look at the
image, accuracy per family, what the visual tokens encode.
"""

from __future__ import annotations

from studio.engine.workshop import tasks as T
from studio.engine.workshop.toy_train.model import IMAGE_TOKENS
from studio.engine.workshop.toy_train.sequences import forward_loss


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


def probe_record(model, probe: dict, diag_batch: dict, families: list[str]) -> dict:
    """The held-out probe of one logged step: ``val_loss``, ``val_answer_acc``, the
    :func:`vision_diagnostic` and the :func:`family_accuracy` (the model is put back in
    training mode)."""
    import torch

    model.eval()
    with torch.no_grad():
        vl, va = forward_loss(model, probe)
    diag = vision_diagnostic(model, diag_batch)
    diag.update(family_accuracy(model, probe, families))
    model.train()
    return dict(val_loss=round(vl.item(), 4), val_answer_acc=round(va, 4), **diag)


def progress_line(stage: str, steps: int, ema: float, acc: float, rec: dict) -> str:
    """The console line of a logged step (with the probe's numbers when ``rec`` has them)."""
    return (f"[{stage}] step {rec['step']}/{steps} loss {ema:.3f} ans_acc {acc:.2f}"
            + (f" | val_loss {rec['val_loss']:.3f} val_ans_acc {rec['val_answer_acc']:.3f}"
               + f" | img_gap {rec['img_gap']:+.3f} acc right/shuffled {rec['ans_acc_right']:.2f}/"
                 f"{rec['ans_acc_shuffled']:.2f} feat_spread {rec['feat_spread']:.3f} | "
               + " ".join(f"{k[4:]} {v:.2f}" for k, v in rec.items() if k.startswith("acc_"))
               if "val_loss" in rec else "") + f" | {rec['elapsed_s']:.0f}s")
