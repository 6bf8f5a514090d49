"""Drawing the synthetic scenes: the 112-px canvas, its 4 × 4 cells of 28 px, colours, seven-segment digits,
:func:`render`.
"""

from __future__ import annotations

from typing import Any


IMAGE_SIZE = 112  # px, square canvas
CELL = 28  # px; one merged visual token of the tiny processor sees one cell
GRID = IMAGE_SIZE // CELL  # 4 × 4 cells
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)  # digits and operators
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 20),
    "purple": (140, 50, 170),
    "orange": (240, 130, 20),
}

#: Seven-segment layout of the digits: segments a (top), b (top right), c (bottom
#: right), d (bottom), e (bottom left), f (top left), g (middle).
SEGMENTS = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg",
    "5": "acdfg", "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}
#: Digit box inside a 28-px cell: x 7..20, y 3..24, stroke 3 px.
DIGIT_BOX = (7, 3, 21, 25)
STROKE = 3


def _draw_shape(draw, obj: dict) -> None:
    x0, y0, x1, y1 = obj["box"]
    color = COLORS[obj["color"]]
    if obj["shape"] == "square":
        draw.rectangle([x0, y0, x1, y1], fill=color)
    elif obj["shape"] == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=color)
    else:  # triangle, apex up
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=color)


def _segment_rects(ox: int, oy: int) -> dict[str, tuple[int, int, int, int]]:
    x0, y0, x1, y1 = DIGIT_BOX
    x0, x1, y0, y1 = x0 + ox, x1 + ox, y0 + oy, y1 + oy
    ym = (y0 + y1) // 2
    s = STROKE
    return {
        "a": (x0, y0, x1, y0 + s - 1),
        "b": (x1 - s + 1, y0, x1, ym),
        "c": (x1 - s + 1, ym, x1, y1),
        "d": (x0, y1 - s + 1, x1, y1),
        "e": (x0, ym, x0 + s - 1, y1),
        "f": (x0, y0, x0 + s - 1, ym),
        "g": (x0, ym - 1, x1, ym + 1),
    }


def _draw_symbol(draw, sym: str, row: int, col: int) -> None:
    ox, oy = col * CELL, row * CELL
    if sym in SEGMENTS:
        rects = _segment_rects(ox, oy)
        for seg in SEGMENTS[sym]:
            draw.rectangle(rects[seg], fill=INK)
        return
    c = CELL // 2
    if sym in "+-":
        draw.rectangle([ox + 6, oy + c - 1, ox + 21, oy + c + 1], fill=INK)
    if sym == "+":
        draw.rectangle([ox + c - 1, oy + 6, ox + c + 1, oy + 21], fill=INK)
    if sym == "x":
        for d in range(-1, 2):  # 3-px thick diagonals, drawn pixel by pixel (no AA)
            for t in range(7, 21):
                for u in (t, 27 - t):
                    x = ox + t + d
                    if 0 <= x - ox < CELL:
                        draw.point((x, oy + u), fill=INK)


def render(description: dict[str, Any]):
    """Render a scene description to an RGB ``PIL.Image`` (112×112, no anti-aliasing)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    if description["kind"] == "shapes":
        for obj in description["objects"]:
            _draw_shape(draw, obj)
    else:
        for k, sym in enumerate(description["symbols"]):
            _draw_symbol(draw, sym, description["row"], description["col"] + k)
    return img


#: What a 28-px cell holds (:func:`cell_labels`): nothing, a shape, or a digit/operator.


# --------------------------------------------------------------------------- scene words
# Shared by the task families (tasks.py) and the grounding family (grounding.py).

SHAPES = ("circle", "square", "triangle")


def object_name(obj: dict) -> str:
    """``"red circle"`` for a scene object."""
    return f"{obj['color']} {obj['shape']}"


def object_cell(obj: dict) -> str:
    """``"row 2 col 3"`` (1-based) for a scene object, as the traces write it."""
    return f"row {obj['row'] + 1} col {obj['col'] + 1}"


def reading_order(objs: list[dict]) -> list[dict]:
    """Objects in reading order (row by row, left to right): captions and traces list
    them in this order, so "the next object" is always the next occupied cell."""
    return sorted(objs, key=lambda o: (o["row"], o["col"]))
