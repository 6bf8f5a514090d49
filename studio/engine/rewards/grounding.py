"""Grounding: IoU of ``[x1,y1,x2,y2]`` boxes on GLM's 0–1000 scale.

Grammar: one box or a list of boxes, ``[x1,y1,x2,y2]`` with plain decimal coordinates
(:func:`studio.engine.infer.reasoning.parse_boxes`); corners in any order; clamped to 0–1000.
More than :data:`MAX_BOXES` predicted boxes, or an answer longer than
:data:`MAX_GROUNDING_CHARS`, score 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from studio.engine.infer.reasoning import Box

MAX_GROUNDING_CHARS = 4000


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (any scale; corners in any order).

    >>> box_iou(Box(0, 0, 100, 100), Box(50, 0, 150, 100))
    0.3333333333333333
    """
    ax1, ax2 = sorted((a.x1, a.x2))
    ay1, ay2 = sorted((a.y1, a.y2))
    bx1, bx2 = sorted((b.x1, b.x2))
    by1, by2 = sorted((b.y1, b.y2))
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def _clamp_box(b: Box) -> Box:
    c = lambda v: min(max(v, 0.0), 1000.0)  # noqa: E731
    return Box(c(b.x1), c(b.y1), c(b.x2), c(b.y2))


MAX_BOXES = 50


def grounding_score(pred_boxes: Sequence[Box], ref_boxes: Sequence[Box], *,
                    iou_threshold: float | None = None) -> float:
    """Match predicted to reference boxes (Hungarian, max IoU) and score the matching.

    Score = Σ matched score / max(#pred, #ref): extra or missing boxes lower it, so
    listing many boxes does not pay. Per pair the score is the IoU, or 1.0 when
    IoU ≥ ``iou_threshold``. More than :data:`MAX_BOXES` predicted boxes score 0.

    >>> grounding_score([Box(0, 0, 100, 100)], [Box(0, 0, 100, 100)])
    1.0
    >>> grounding_score([Box(0, 0, 100, 100), Box(500, 500, 600, 600)], [Box(0, 0, 100, 100)])
    0.5
    """
    if not pred_boxes or not ref_boxes or len(pred_boxes) > MAX_BOXES:
        return 0.0
    import numpy as np

    P = [_clamp_box(b) for b in pred_boxes]
    R = [_clamp_box(b) for b in ref_boxes]
    iou = np.array([[box_iou(p, r) for r in R] for p in P])
    if len(P) == 1 or len(R) == 1:  # one pair at most: the best IoU
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        pairs = [(int(i), int(j))]
    else:
        pairs = _assign(iou)
    scores = [iou[i, j] if iou_threshold is None else float(iou[i, j] >= iou_threshold)
              for i, j in pairs]
    return float(sum(scores) / max(len(P), len(R)))


def _assign(iou: Any) -> list[tuple[int, int]]:
    """Max-IoU one-to-one matching (SciPy's Hungarian solver; greedy without SciPy)."""
    import numpy as np

    try:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-iou)
        pairs = list(zip(rows.tolist(), cols.tolist()))
    except ImportError:  # greedy fallback
        pairs, used_r, used_p = [], set(), set()
        for flat in np.argsort(-iou, axis=None):
            i, j = divmod(int(flat), iou.shape[1])
            if i not in used_p and j not in used_r:
                pairs.append((i, j))
                used_p.add(i)
                used_r.add(j)
    return pairs


def to_thousandths(boxes: list[Box], image_size: Any) -> list[Box] | None:
    """Pixel boxes of an image of ``image_size`` ``[w, h]`` → 0–1000 scale; None if no size."""
    try:
        w, h = (float(v) for v in image_size)
    except (TypeError, ValueError):
        return None
    if w <= 0 or h <= 0:
        return None
    return [Box(b.x1 / w * 1000, b.y1 / h * 1000, b.x2 / w * 1000, b.y2 / h * 1000) for b in boxes]
