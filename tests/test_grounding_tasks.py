"""The grounding family: every box and relation re-derived from the pixels; the IoU scoring of
``studio eval``; pass@k; the training stream's family weights and held-out skipping.

The pixel reader here is independent of the generator: connected components of each
palette colour, classified by how much of their bounding box they fill; the reference box
is the component's own pixel extent on the 0–1000 scale.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy import ndimage

from studio.engine.workshop import grounding as G
from studio.engine.workshop import tasks as T
from studio.engine.workshop.evaluate import box_iou, verify
from studio.engine.workshop.learnability import learnability_table, pass_at_k, shuffled_images
from studio.errors import InputError

PALETTE = {
    "red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 80, 220),
    "yellow": (230, 200, 20), "purple": (140, 50, 170), "orange": (240, 130, 20),
}


def pixel_objects(img) -> list[dict]:
    arr = np.asarray(img)
    out = []
    for name, rgb in PALETTE.items():
        lab, n = ndimage.label(np.all(arr == np.array(rgb, dtype=arr.dtype), axis=-1), structure=np.ones((3, 3)))
        for k in range(1, n + 1):
            ys, xs = np.nonzero(lab == k)
            w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
            fill = len(xs) / (w * h)
            shape = "square" if fill > 0.92 else "circle" if fill > 0.68 else "triangle"
            box = [v * 1000 / 112 for v in (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)]
            out.append({"color": name, "shape": shape, "box": box,
                        "row": int((ys.min() + ys.max()) / 2 // 28), "col": int((xs.min() + xs.max()) / 2 // 28)})
    return out


def derive_box(question: str, objs: list[dict]) -> list[float]:
    m = re.fullmatch(r"Where is the (\w+) (\w+)\?", question)
    if m:
        hits = [o for o in objs if (o["color"], o["shape"]) == m.groups()]
        assert len(hits) == 1, question
        return hits[0]["box"]
    m = re.fullmatch(r"Where is the (\w+)(?: shape)? (?:on|at) the (left|right|top|bottom)\?", question)
    assert m, question
    value, side = m.groups()
    key = "shape" if value in G.SHAPES else "color"
    pair = [o for o in objs if o[key] == value]
    assert len(pair) == 2, question
    axis, sign = G.SIDES[side]
    assert pair[0][axis] != pair[1][axis], question
    return max(pair, key=lambda o: o[axis] * sign)["box"]


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_every_box_rederived_from_the_pixels(level):
    n_q = 0
    for i in range(40):
        s = T.make_scene("grounding", level, 0, i)
        objs = pixel_objects(s.image)
        assert len(objs) == len(s.description["objects"])
        assert s.items, "every grounding scene asks at least one question"
        for it in s.items:
            ref = json.loads(it.answer)
            got = derive_box(it.question, objs)
            # triangles and circles fill less of their nominal 20-px box than squares: IoU,
            # not equality; the neighbouring cell's box never comes close
            assert _iou(ref, got) >= 0.7, (it.question, ref, got)
            assert it.answer in it.choices and len(it.choices) == len(objs)
            row, col = G.answer_cell(it.answer)
            assert f"row {row} col {col}." in it.trace
            n_q += 1
    assert n_q >= 40


def test_level_two_needs_binding_and_level_three_is_a_spatial_expression():
    for i in range(30):
        d = T.make_scene("grounding", 2, 1, i, render_image=False).description
        for o in d["objects"]:  # the asked kind shares its colour and its shape with others
            others = [p for p in d["objects"] if p is not o]
            assert any(p["color"] == o["color"] for p in others) or any(p["shape"] == o["shape"] for p in others)
        q3 = T.make_scene("grounding", 3, 1, i, render_image=False).items
        assert q3 and all(re.search(r" (on|at) the (left|right|top|bottom)\?$", it.question) for it in q3)


def test_grounding_is_opt_in_and_the_default_families_are_unchanged(tmp_path):
    assert "grounding" not in T.FAMILIES and "grounding" in T.ALL_FAMILIES
    assert {s.family for s in T.generate_scenes(24, 0)} == set(T.FAMILIES)
    with pytest.raises(InputError, match="grounding"):
        T.make_scene("boxes", 1, 0, 0)
    from studio.cli import main

    assert main(["tasks", "--out", str(tmp_path), "--families", "grounding", "--n", "6", "--eval-n", "6",
                 "--eval-seed", "7003"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert {r["task_type"] for r in rows} == {"grounding"}
    assert all("-s7003-" in r["id"] for r in rows)
    # --questions keeps one kind of question in every file (the RL recipe's slice)
    assert main(["tasks", "--out", str(tmp_path / "tb"), "--families", "grounding", "--levels", "3", "--n", "8",
                 "--eval-n", "4", "--questions", "at the (top|bottom)"]) == 0
    for name in ("rl.jsonl", "eval.jsonl"):
        got = [json.loads(x)["prompt"] for x in (tmp_path / "tb" / name).read_text().splitlines()]
        assert got and all(re.search(r"at the (top|bottom)\?$", q) for q in got)
    with pytest.raises(InputError, match="matching"):
        T.generate(2, 0, ["arithmetic"], [1], questions="no such question")


def test_studio_eval_scores_boxes_by_iou_at_one_half():
    right, neighbour = G.box_text(G.cell_box(1, 2)), G.box_text(G.cell_box(1, 3))
    assert verify(right, right, "grounding") and not verify(neighbour, right, "grounding")
    half = "[" + ",".join(str(v) for v in (286 + 50, 286, 464 + 50, 464)) + "]"  # shifted by 50 of 178
    assert 0.5 <= box_iou(half, "[286,286,464,464]") < 1 and verify(half, "[286,286,464,464]", "grounding")
    assert box_iou("no box", right) == 0.0 and not verify("4", right, "grounding")


def test_report_shows_mean_iou_only_for_box_rows():
    from studio.engine.workshop.evaluate import Report, Result

    rep = Report("m", "thinking", [Result("a", "grounding", 1, "[0,0,100,100]", "", "[0,0,100,100]", True, True,
                                          0.5, iou=1.0),
                                   Result("b", "grounding", 1, "[0,0,100,100]", "", "[50,0,150,100]", True, False,
                                          0.5, iou=1 / 3)])
    assert "mean IoU" in rep.table() and "| 0.67 |" in rep.table()
    plain = Report("m", "thinking", [Result("c", "shapes", 1, "2", "", "2", True, True, 0.3)])
    assert "IoU" not in plain.table()


def test_pass_at_k_and_swapped_images():
    assert pass_at_k(8, 0, 8) == 0.0 and pass_at_k(8, 2, 1) == 0.25
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - (7 * 6 * 5 * 4 * 3) / (10 * 9 * 8 * 7 * 6))
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 2)
    rows = [{"family": "g", "difficulty": 1, "images": [f"{i}.png"]} for i in range(3)]
    rows.append({"family": "g", "difficulty": 2, "images": ["only.png"]})
    sw = shuffled_images(rows)
    assert [r["images"][0] for r in sw] == ["1.png", "2.png", "0.png", "only.png"]
    assert rows[0]["images"] == ["0.png"]  # the input is not changed
    table = learnability_table([{"family": "g", "difficulty": 1, "n": 3, "greedy": 0.1, "pass@1": 0.2, "pass@k": 0.9,
                                 "pass@k_shuffled": 0.3, "follows_image": 0.6, "k": 8, "temperature": 1.0}])
    assert "| g | 1 | 3 | 10 | 20 | 90 | 30 | +60 |" in table


def test_training_stream_family_weights_and_held_out_grounding():
    from studio.engine.workshop.toy_train.cli import parse_family_weights
    from studio.engine.workshop.toy_train.sequences import SceneStream, eval_keys

    assert parse_family_weights(None) is None
    assert parse_family_weights(["shapes", "grounding:2.5"]) == {"shapes": 1.0, "grounding": 2.5}
    for bad in (["boxes"], ["shapes:0"], ["shapes:x"]):
        with pytest.raises(InputError):
            parse_family_weights(bad)
    from studio.engine.workshop.toy_train.cli import parse_family_levels

    assert parse_family_levels(["shapes", "grounding:1:21"]) == {"grounding": (1, 2)}
    assert parse_family_levels(["shapes:2"]) is None
    with pytest.raises(InputError):
        parse_family_levels(["grounding:1:4"])
    low = SceneStream(0, 40, set(), {"grounding": 1.0}, {"grounding": (1, 2)}).scenes(5, 1.0)
    assert {s.difficulty for s in low} == {1, 2}
    kept = SceneStream(0, 30, set(), {"grounding": 1.0}, None, r"at the (top|bottom)\?").scenes(3, 1.0)
    qs = [it.question for sc in kept for it in sc.items]
    assert any("on the left" in q or "on the right" in q for q in qs)
    assert not any("at the top" in q or "at the bottom" in q for q in qs)
    default = SceneStream(0, 6, set()).scenes(3, 0.5)
    assert all(s.family in T.FAMILIES for s in default)
    only = SceneStream(0, 6, set(), {"grounding": 1.0}).scenes(3, 0.5)
    assert {s.family for s in only} == {"grounding"}
    assert all(not it.question.startswith("How many") for s in only for it in s.items)
    # a held-out grounding scene of a recipe seed is skipped by training
    held = T.generate_scenes(3, T.GROUNDING_HELD_OUT_SEEDS[0], ["grounding"], render_image=False)
    keys = eval_keys(0, n=5, pool=5, grounding=True)
    assert all(s.key() in keys for s in held)
    assert not any(s.key() in eval_keys(0, n=5, pool=5) for s in held)


def test_shipped_toy_thinking_draws_the_chat_examples_box():
    """Issue 25.5: the Chat tab's first workshop example (a held-out scene) gets a box from the
    shipped model for the red circle's cell (greedy, as `studio chat --temperature 0`) — in the
    y-first order its SFT data mixed in, which the RL recipe settles (docs/workshop.md, step 4)."""
    from studio.config import ModelSpec
    from studio.engine.infer.models import load
    from studio.engine.infer.reasoning import parse
    from studio.engine.workshop.evaluate import generate_outputs
    from studio.ui.tabs.chat_examples import GROUNDING_EXAMPLE, SAMPLE_DATA

    image = SAMPLE_DATA / "workshop" / "images" / GROUNDING_EXAMPLE[0]
    model, processor = load(ModelSpec(name_or_path="toy-thinking", device="cpu"))
    out = generate_outputs(model, processor, [{"prompt": "<image>" + GROUNDING_EXAMPLE[1], "images": [str(image)]}])
    red_circles = [o for o in pixel_objects(__import__("PIL.Image").Image.open(image).convert("RGB"))
                   if (o["color"], o["shape"]) == ("red", "circle")]
    assert len(red_circles) == 1
    ref = "[" + ",".join(str(round(v)) for v in red_circles[0]["box"]) + "]"
    got = parse(out[0]).boxed[0]
    # the example is off the diagonal, so the two orders are different cells: the SFT model
    # names the circle's cell in its trace and writes the box y-first (what RL settles)
    assert box_iou(got, G.yx_box(ref)) >= 0.5 and box_iou(got, ref) == 0.0, out[0]
    assert "row 3 col 1." in parse(out[0]).thinking, out[0]


def test_flipped_row_convention_picks_the_other_object_and_says_so():
    """The mixed-strategy SFT: a top/bottom trace in the bottom-up convention names the
    other object of the pair (re-derived from the pixels) and states its convention."""
    from studio.engine.workshop.toy_train.sequences import SceneStream

    n = 0
    for i in range(40):
        s = T.make_scene("grounding", 3, 2, i)
        objs = pixel_objects(s.image)
        for it in s.items:
            flipped = G.flipped_rows(s.description, it.question)
            if not re.search(r"at the (top|bottom)\?$", it.question):
                assert flipped is None
                continue
            trace, answer = flipped
            assert "The first row is the top: the one at the" in it.trace
            assert "The first row is the bottom: the one at the" in trace
            m = re.fullmatch(r"Where is the (\w+)(?: shape)? at the (top|bottom)\?", it.question)
            key = "shape" if m[1] in G.SHAPES else "color"
            pair = [o for o in objs if o[key] == m[1]]
            right = derive_box(it.question, objs)
            wrong = next(o["box"] for o in pair if _iou(o["box"], right) < 0.1)
            assert _iou(json.loads(answer), wrong) >= 0.7 and answer != it.answer
            row, col = G.answer_cell(answer)
            assert trace.endswith(f"is at row {row} col {col}.")
            n += 1
    assert n >= 20
    stream = SceneStream(0, 40, set(), {"grounding": 1.0}, {"grounding": (3,)}, None, 0.5)
    traces = [it.trace for sc in stream.scenes(2, 1.0) for it in sc.items if "at the " in it.question]
    share = sum("row is the bottom" in t for t in traces) / len(traces)
    assert len(traces) >= 20 and 0.25 < share < 0.75
    unflipped = SceneStream(0, 40, set(), {"grounding": 1.0}, {"grounding": (3,)}).scenes(2, 1.0)
    assert not any("row is the bottom" in it.trace for sc in unflipped for it in sc.items)


def test_yx_boxes_swap_the_order_for_the_stated_share_and_the_verifier_tells_them_apart():
    from studio.engine.workshop.toy_train.sequences import SceneStream

    assert G.yx_box("[286,36,464,214]") == "[36,286,214,464]"
    assert G.yx_box(G.box_text(G.cell_box(2, 2))) == G.box_text(G.cell_box(2, 2))  # the diagonal
    with pytest.raises(ValueError):
        G.yx_box("[1,2,3]")
    # off the diagonal a y-first box is another cell: IoU 0 with the reference
    ref = G.box_text(G.cell_box(0, 1))
    assert _iou(json.loads(G.yx_box(ref)), json.loads(ref)) == 0.0
    stream = SceneStream(0, 40, set(), {"grounding": 1.0, "shapes": 1.0}, None, None, 0.0, 0.6)
    items = [(sc, it) for sc in stream.scenes(4, 1.0) for it in sc.items]
    boxes = [(sc, it) for sc, it in items if sc.family == "grounding"]
    swapped = 0
    for sc, it in boxes:
        row, col = map(int, re.findall(r"row (\d) col (\d)\.$", it.trace)[0])
        right = G.box_text(G.cell_box(row - 1, col - 1))
        assert it.answer in (right, G.yx_box(right))
        swapped += it.answer != right
    off_diagonal = sum(not re.search(r"row (\d) col \1\.$", it.trace) for _, it in boxes)
    assert len(boxes) >= 40 and 0.4 < swapped / off_diagonal < 0.8
    assert all(not it.answer.startswith("[") for sc, it in items if sc.family == "shapes")
