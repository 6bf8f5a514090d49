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
* level 3 — a spatial referring expression: "Where is the circle on the left?" — exactly two
  objects have the asked shape (or colour: "Where is the red shape at the top?"), in
  different columns (left/right) or rows (top/bottom); the answer is the one on that side.
  The workshop model's thinking SFT trains left/right, and trains top/bottom with two row
  conventions mixed (:func:`flipped_rows`: half the traces read the rows bottom-up and box
  the other object), so the SFT model picks the right one about half the time and RL can
  select the convention the IoU reward pays for.

The trace names the cell ("The red circle is at row 2 col 3."; level 3 first both
candidates, then — top/bottom — the row convention, then the one on the side), so the box
follows from the trace. Every box and relation can be
re-derived from the pixels (``tests/test_grounding_tasks.py``).
"""

from __future__ import annotations

import random
import re
from typing import Any

from studio.engine.workshop.drawing import CELL, COLORS, GRID, IMAGE_SIZE, SHAPES
from studio.engine.workshop.drawing import object_cell as _where, object_name as _name, reading_order as _raster
#: Width of every grounding object (px); centred in its cell with 3 px of white around.
OBJECT_SIZE = 20


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
        n = rng.randint(3, 5)
        colors = rng.sample(list(COLORS), 3)
        cells = rng.sample(range(GRID * GRID), n)
        objs = _raster([_obj(*divmod(c, GRID), rng.choice(colors), rng.choice(SHAPES)) for c in cells])
        if len({_name(o) for o in objs}) == n and side_queries(objs):
            return {"kind": "shapes", "objects": objs}
    raise RuntimeError("could not place a level-3 grounding scene")  # pragma: no cover


#: Level-3 sides: the word in the question → (axis, +1 for the larger coordinate).
SIDES = {"left": ("col", -1), "right": ("col", 1), "top": ("row", -1), "bottom": ("row", 1)}


def side_queries(objs: list[dict]) -> list[tuple[str, str, dict, dict]]:
    """Every valid level-3 query ``(attribute value, side, target, other)``: exactly two objects
    share the attribute (a shape, or a colour), they differ on the side's axis, and ``target``
    is the one on that side."""
    out = []
    for key in ("shape", "color"):
        for value in sorted({o[key] for o in objs}):
            pair = [o for o in objs if o[key] == value]
            if len(pair) != 2:
                continue
            for side, (axis, sign) in SIDES.items():
                a, b = pair
                if a[axis] == b[axis]:
                    continue
                t, other = (a, b) if (a[axis] - b[axis]) * sign > 0 else (b, a)
                out.append((value, side, t, other))
    return out


def _side_question(value: str, side: str) -> str:
    thing = f"{value} shape" if value in COLORS else value
    return f"Where is the {thing} {'on the' if side in ('left', 'right') else 'at the'} {side}?"


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
    for value, side, t, other in side_queries(objs):
        qs.append((_side_question(value, side), box_text(t["box"]), _side_trace(value, side, t, other),
                   "grounding", boxes))
    return qs


#: The sentence a top/bottom trace states its row convention with, before picking (rows are
#: numbered from the top in every trace; a teacher that reads them bottom-up says "bottom").
ROW_CONVENTION = "The first row is the {}: "
_SIDE_Q = re.compile(r"^Where is the (?P<value>.+?)(?: shape)? (?:on|at) the (?P<side>left|right|top|bottom)\?$")


def _side_trace(value: str, side: str, pick: dict, other: dict, first_row: str = "top") -> str:
    """The level-3 trace: both candidates in reading order, then (top/bottom only) the row
    convention, then the picked one."""
    first, second = sorted((pick, other), key=lambda o: (o["row"], o["col"]))
    plural = f"{value} shapes" if value in COLORS else f"{value}s"
    horizontal = side in ("left", "right")
    convention = "" if horizontal else ROW_CONVENTION.format(first_row)
    the_one = "the one" if convention else "The one"
    return (f"{plural.capitalize()}: {_where(first)}, {_where(second)}. {convention}{the_one} "
            f"{'on the' if horizontal else 'at the'} {side} is at {_where(pick)}.")


def flipped_rows(desc: dict, question: str) -> tuple[str, str] | None:
    """``(trace, answer)`` for a top/bottom question as a teacher who reads the rows
    bottom-up writes them: "The first row is the bottom: the one at the top is at <the lower
    one>." — the wrong object, stated confidently. None for any other question.

    Why: the workshop's thinking SFT mixes the two conventions on top/bottom questions (the
    ``--flip-rows`` share), so the SFT model picks either with about that probability; a
    one-token decision that the IoU reward tells apart is what GRPO can select within
    minutes (the slice's pass@8 is about twice its pass@1). See docs/FACTS.md, "Learnability".
    """
    m = _SIDE_Q.match(question)
    if not m or m["side"] not in ("top", "bottom"):
        return None
    value, side = m["value"], m["side"]
    key = "color" if value in COLORS else "shape"
    pair = [o for o in desc["objects"] if o[key] == value]
    if len(pair) != 2 or pair[0]["row"] == pair[1]["row"]:
        return None
    sign = SIDES[side][1]
    wrong, right = sorted(pair, key=lambda o: o["row"] * sign)  # the picked one is not on that side
    return _side_trace(value, side, wrong, right, first_row="bottom"), box_text(wrong["box"])


def yx_box(answer: str) -> str:
    """A box answer in the y-first order ``[y1,x1,y2,x2]`` that some grounding datasets use
    (Gemini's ``[ymin, xmin, ymax, xmax]``) instead of GLM-4.1V's ``[x1,y1,x2,y2]``.

    Why: the workshop's thinking SFT can mix the two orders (``toy_train --yx-boxes``), as a
    fine-tuning set merged from two sources does; the IoU verifier pays only GLM's order, so
    GRPO can select it. A box on the diagonal (row = col) reads the same both ways.

    >>> yx_box("[286,36,464,214]")
    '[36,286,214,464]'

    Raises:
        ValueError: ``answer`` is not four comma-separated integers in brackets.
    """
    x1, y1, x2, y2 = (int(v) for v in answer.strip("[]").split(","))
    return f"[{y1},{x1},{y2},{x2}]"


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
