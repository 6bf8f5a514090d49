"""The ``grounding`` task family: "Where is the red circle?" answered with a box.

Why: GLM-4.1V answers grounding questions as ``<|begin_of_box|>[x1,y1,x2,y2]<|end_of_box|>`` on a
0–1000 scale, the Chat tab draws such boxes, and the IoU verifier
(:mod:`studio.engine.rewards.grounding`) pays for them. This family gives the workshop models
boxes to learn and RL a slice whose answers follow the image (pass@8 far above pass@1; see
docs/FACTS.md, "Learnability").

Scenes (same 112-px canvas and 28-px cells as the other families): every object is 20 px
wide and centred in its cell, so an object's box is a function of its cell and a box is
right (IoU ≥ 0.5) exactly when the cell is; the boxes of two cells never overlap.

* level 1 — 2–3 objects of distinct colours and shapes: "Where is the red circle?".
* level 2 — 4–5 objects of unique kinds from 2 colours × 3 shapes, so every asked object
  shares its colour with one object and its shape with another (binding colour to shape).
* level 3 — relational: "Where is the circle left of the blue square?" — the anchor's kind
  is unique, at least two objects have the asked shape, exactly one of them lies on the
  named side (by column for left/right, by row for above/below).

The trace names the cell ("The red circle is at row 2 col 3."; level 3 first the anchor,
then the answer), so the box follows from the trace. Every box and relation can be
re-derived from the pixels (``tests/test_grounding_tasks.py``).
"""

from __future__ import annotations

import random
from typing import Any

from studio.engine.workshop.drawing import CELL, COLORS, GRID, IMAGE_SIZE

SHAPES = ("circle", "square", "triangle")
#: Width of every grounding object (px); centred in its cell with 3 px of white around.
OBJECT_SIZE = 20
RELATIONS = {"left of": ("col", -1), "right of": ("col", 1), "above": ("row", -1), "below": ("row", 1)}


def cell_box(row: int, col: int) -> list[int]:
    """Pixel box ``[x0, y0, x1, y1]`` (inclusive) of the object centred in cell (row, col), 0-based.

    >>> cell_box(0, 0), cell_box(3, 3)
    ([4, 4, 23, 23], [88, 88, 107, 107])
    """
    off = (CELL - OBJECT_SIZE) // 2
    x0, y0 = col * CELL + off, row * CELL + off
    return [x0, y0, x0 + OBJECT_SIZE - 1, y0 + OBJECT_SIZE - 1]


def box_text(box: list[int]) -> str:
    """A pixel box (inclusive corners) as GLM-4.1V's answer on the 0–1000 scale:
    ``[x1,y1,x2,y2]`` with the exclusive far corner, rounded to whole thousandths.

    >>> box_text(cell_box(0, 0))
    '[36,36,214,214]'
    """
    s = 1000 / IMAGE_SIZE
    x0, y0, x1, y1 = box
    return "[" + ",".join(str(round(v * s)) for v in (x0, y0, x1 + 1, y1 + 1)) + "]"


def _obj(row: int, col: int, color: str, shape: str) -> dict:
    return {"shape": shape, "color": color, "row": row, "col": col, "size": OBJECT_SIZE,
            "box": cell_box(row, col)}


def _raster(objs: list[dict]) -> list[dict]:
    return sorted(objs, key=lambda o: (o["row"], o["col"]))


def scene(rng: random.Random, level: int) -> dict:
    """Scene description ``{"kind": "shapes", "objects": [...]}`` for ``level`` (1–3).

    Raises:
        RuntimeError: no valid level-3 scene in 1,000 tries (does not happen with 4×4 cells).
    """
    if level == 1:
        n = rng.randint(2, 3)
        cells = rng.sample(range(GRID * GRID), n)
        colors, shapes = rng.sample(list(COLORS), n), rng.sample(SHAPES, n)
        return {"kind": "shapes", "objects": _raster(
            [_obj(*divmod(c, GRID), col, sh) for c, col, sh in zip(cells, colors, shapes)])}
    if level == 2:
        n = rng.randint(4, 5)
        colors = rng.sample(list(COLORS), 2)
        kinds = rng.sample([(c, s) for c in colors for s in SHAPES], n)
        cells = rng.sample(range(GRID * GRID), n)
        return {"kind": "shapes", "objects": _raster(
            [_obj(*divmod(c, GRID), col, sh) for c, (col, sh) in zip(cells, kinds)])}
    for _ in range(1000):
        n = rng.randint(4, 6)
        colors = rng.sample(list(COLORS), 3)
        cells = rng.sample(range(GRID * GRID), n)
        objs = _raster([_obj(*divmod(c, GRID), rng.choice(colors), rng.choice(SHAPES)) for c in cells])
        if relational_queries(objs):
            return {"kind": "shapes", "objects": objs}
    raise RuntimeError("could not place a level-3 grounding scene")  # pragma: no cover


def _name(o: dict) -> str:
    return f"{o['color']} {o['shape']}"


def _where(o: dict) -> str:
    return f"row {o['row'] + 1} col {o['col'] + 1}"


def relational_queries(objs: list[dict]) -> list[tuple[dict, str, str, dict]]:
    """Every valid level-3 query ``(anchor, relation, shape, target)``: the anchor's kind is
    unique in the scene; at least two other objects have ``shape``; exactly one of them,
    ``target``, lies strictly on the ``relation`` side of the anchor."""
    out = []
    for a in objs:
        if sum(_name(o) == _name(a) for o in objs) != 1:
            continue
        for shape in SHAPES:
            cands = [o for o in objs if o is not a and o["shape"] == shape]
            if len(cands) < 2:
                continue
            for rel, (axis, sign) in RELATIONS.items():
                hits = [o for o in cands if (o[axis] - a[axis]) * sign > 0]
                if len(hits) == 1:
                    out.append((a, rel, shape, hits[0]))
    return out


def questions(desc: dict, level: int) -> list[tuple]:
    """``(question, answer, trace, task_type, choices)`` per asked object; ``answer`` is the
    box text (:func:`box_text`), ``choices`` the boxes of every object in the scene (so
    chance = a uniform pick among the objects)."""
    objs = desc["objects"]
    boxes = [box_text(o["box"]) for o in objs]
    qs = []
    if level <= 2:
        for o in objs:
            qs.append((f"Where is the {_name(o)}?", box_text(o["box"]),
                       f"The {_name(o)} is at {_where(o)}.", "grounding", boxes))
        return qs
    seen = set()
    for a, rel, shape, t in relational_queries(objs):
        q = f"Where is the {shape} {rel} the {_name(a)}?"
        if q in seen:
            continue
        seen.add(q)
        qs.append((q, box_text(t["box"]),
                   f"The {_name(a)} is at {_where(a)}. The {shape} {rel} it is at {_where(t)}.",
                   "grounding", boxes))
    return qs


def answer_cell(answer: str) -> tuple[int, int] | None:
    """The 1-based (row, col) of a grounding answer box, None when it is no cell's box.

    >>> answer_cell(box_text(cell_box(1, 2)))
    (2, 3)
    """
    for r in range(GRID):
        for c in range(GRID):
            if box_text(cell_box(r, c)) == answer:
                return r + 1, c + 1
    return None


def describe(desc: dict[str, Any]) -> str:
    """One line naming every object and its cell (for logs and docs)."""
    return ", ".join(f"{_name(o)} at {_where(o)}" for o in desc["objects"])
