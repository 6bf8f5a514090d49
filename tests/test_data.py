"""Data layer of the SFT stage: formats, path safety, the doctor, auto-fix, masks, preview."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from studio.engine.train import data as D
from studio.errors import DataError, MediaError

SFT = Path(__file__).resolve().parents[1] / "sample_data" / "sft"
GOOD = "<think>Fur and whiskers.</think><answer>A cat.</answer>"


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    shutil.copy(SFT / "images" / "cat.jpg", tmp_path / "img" / "cat.jpg")
    shutil.copy(SFT / "images" / "coffee.jpg", tmp_path / "img" / "coffee.jpg")
    return tmp_path


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def glm(q="What animal?", a=GOOD, images=("img/cat.jpg",), tag="<image>"):
    return {"messages": [{"role": "user", "content": tag * len(images) + q},
                         {"role": "assistant", "content": a}], "images": list(images)}


# ----------------------------------------------------------------------------- formats
def test_every_format_loads_to_the_same_rows(folder):
    expect = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What animal?"}]},
              {"role": "assistant", "content": GOOD}]
    image = str((folder / "img" / "cat.jpg").resolve())
    files = {
        "glm.jsonl": [glm()],
        "trl.jsonl": [{"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What animal?"}]},
                                    {"role": "assistant", "content": [{"type": "text", "text": GOOD}]}],
                       "images": ["img/cat.jpg"]}],
        "trl_string.jsonl": [{"messages": [{"role": "user", "content": "What animal?"},
                                           {"role": "assistant", "content": GOOD}], "images": ["img/cat.jpg"]}],
        "pc.jsonl": [{"prompt": "<image>What animal?", "completion": GOOD, "images": ["img/cat.jpg"]}],
        "pc_plain.jsonl": [{"prompt": "What animal?", "completion": GOOD, "images": ["img/cat.jpg"]}],
        "votes.jsonl": [{"prompt": "What animal?", "media": ["img/cat.jpg"], "outputs": {"A": "no", "B": GOOD}, "vote": "B"},
                        {"prompt": "x", "media": [], "outputs": {"A": "a", "B": "b"}, "vote": "tie"},
                        {"prompt": "x", "media": [], "outputs": {"A": "a", "B": "b"}, "vote": "both_bad"}],
    }
    for name, recs in files.items():
        write_jsonl(folder / name, recs)
    (folder / "glm.json").write_text(json.dumps([glm()]))
    with open(folder / "glm.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["messages", "images"])
        w.writeheader()
        w.writerow({"messages": json.dumps(glm()["messages"]), "images": json.dumps(["img/cat.jpg"])})
    import datasets

    ds = datasets.Dataset.from_list([glm()])
    ds.to_parquet(str(folder / "glm.parquet"))
    ds.save_to_disk(str(folder / "hfds"))
    shutil.copytree(folder / "img", folder / "hfds" / "img")
    paths = [folder / n for n in files] + [folder / "glm.json", folder / "glm.csv", folder / "glm.parquet", folder / "hfds"]
    for p in paths:
        rows = D.load_rows(p)
        assert len(rows) == 1, p.name
        r = rows[0]
        assert r.messages == expect, p.name
        assert r.images == [image if p.name != "hfds" else str((folder / "hfds" / "img" / "cat.jpg").resolve())], p.name
        assert r.videos == []
    votes = D.load_rows(folder / "votes.jsonl")
    assert dict(votes.skipped) == {"vote tie": 1, "vote both_bad": 1}
    assert votes[0].meta["format"] == "compare_vote"


def test_folder_of_files_and_hub_name_offline(folder):
    write_jsonl(folder / "a.jsonl", [glm()])
    write_jsonl(folder / "b.jsonl", [glm(q="Q2")])
    assert len(D.load_rows(folder)) == 2
    with pytest.raises(DataError, match="offline"):
        D.load_rows("someone/some-dataset")


def test_video_row_format(folder):
    shutil.copy(SFT.parent / "video" / "clip.mp4", folder / "clip.mp4")
    rows = D.load_rows(write_jsonl(folder / "v.jsonl", [
        {"messages": [{"role": "user", "content": "<video>What happens?"}, {"role": "assistant", "content": GOOD}],
         "videos": ["clip.mp4"]}]))
    assert rows[0].messages[0]["content"][0] == {"type": "video"}
    assert rows[0].videos == [str((folder / "clip.mp4").resolve())]


# ----------------------------------------------------------------------------- bad input
def test_empty_file(folder):
    (folder / "e.jsonl").write_text("")
    with pytest.raises(DataError, match="empty"):
        D.load_rows(folder / "e.jsonl")
    rows, rep = D.diagnose(folder / "e.jsonl")
    assert rep.problems[0].check == "empty" and rep.summary["errors"] == 1


def test_invalid_json_on_line_7(folder, processor):
    lines = [json.dumps(glm())] * 6 + ['{"messages": [oops'] + [json.dumps(glm())]
    (folder / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="invalid JSON on line 7"):
        D.load_rows(folder / "bad.jsonl")
    rows, rep = D.diagnose(folder / "bad.jsonl", processor, 2048)
    assert len(rows) == 7
    [p] = [p for p in rep.problems if p.check == "json"]
    assert p.line == 7 and p.message.startswith("invalid JSON on line 7")


def test_local_media_paths_may_point_anywhere_urls_do_not(folder, tmp_path_factory):
    """Local data is the user's: '..', absolute paths and symlinks elsewhere resolve (the
    public Space builds no training tab); remote URLs are refused with the fix."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(folder / "img" / "cat.jpg", elsewhere / "cat.jpg")
    os.symlink(elsewhere / "cat.jpg", folder / "img" / "link.jpg")
    rel = os.path.relpath(elsewhere / "cat.jpg", folder)
    rows = D.load_rows(write_jsonl(folder / "d.jsonl", [glm(images=(str(elsewhere / "cat.jpg"),)),
                                                        glm(images=(rel,)), glm(images=("img/link.jpg",))]))
    target = str((elsewhere / "cat.jpg").resolve())
    assert [r.images for r in rows] == [[target]] * 3
    write_jsonl(folder / "u.jsonl", [glm(), glm(images=("http://x.org/a.jpg",))])
    with pytest.raises(DataError, match=r"u.jsonl row 2 \(line 2\): media 'http://x.org/a.jpg' is a URL; download"):
        D.load_rows(folder / "u.jsonl")


def checks(rep, row):
    return {(p.check, p.severity) for p in rep.problems if p.row == row}


def test_doctor_checks_fire_on_bad_rows_only(folder, processor):
    (folder / "img" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0not a jpeg at all" * 10)
    rows = [
        glm(),                                                          # 1 good
        glm(a="<think>x</think><answer>A cat."),                        # 2 missing </answer>
        {**glm(tag=""), "messages": [{"role": "user", "content": "<image><image>Two?"},
                                     {"role": "assistant", "content": GOOD}]},  # 3 two <image>, one image
        glm(images=("img/missing.jpg",)),                               # 4 missing image
        glm(images=("img/corrupt.jpg",)),                               # 5 corrupt image
        glm(a="<answer>x</answer><think>y</think>"),                    # 6 order
        glm(a="<think>a</think><answer><|begin_of_box|>1<|end_of_box|><|begin_of_box|>2<|end_of_box|></answer>"),  # 7 two boxes
        glm(q="What animal is in the picture?", a="<think>The cat is sitting 在椅子上面看着窗外的风景和天空 and it looks happy.</think><answer>一只猫 cat</answer>"),  # 8 language mix
        glm(a="<think>" + "The cat is orange. " * 5 + "</think><answer>A cat.</answer>"),  # 9 repetition
        glm(a="<answer>A cat.</answer>"),                              # 10 answer only (warning)
    ]
    loaded = D.load_rows(write_jsonl(folder / "d.jsonl", rows))
    rep = D.doctor(loaded, processor, 2048)
    assert checks(rep, 1) == set()
    assert ("tags", "error") in checks(rep, 2)
    assert [p.auto_fixable for p in rep.problems if p.row == 2] == ["close_answer"]
    assert checks(rep, 3) == {("placeholders", "error")}
    assert checks(rep, 4) == {("files", "error")}
    assert checks(rep, 5) == {("files", "error")}
    assert checks(rep, 6) == {("tags", "error")}
    assert checks(rep, 7) == {("tags", "error")}
    assert ("language", "warning") in checks(rep, 8)
    assert checks(rep, 9) == {("repetition", "warning")}
    assert checks(rep, 10) == {("tags", "warning")}
    assert rep.error_rows() == {2, 3, 4, 5, 6, 7}
    s = rep.summary
    assert s["rows"] == 10 and s["rows_with_errors"] == 6
    kept, counts = D.plan_rows(loaded, rep)
    assert len(kept) == 4 and counts["skipped_errors"] == 6
    assert "| 2 (line 2) | error | tags | missing `</answer>`" in rep.to_markdown()
    with pytest.raises(DataError, match=r"No row can be trained: 1 row with errors, 0 rows too long\."):
        D.plan_rows(loaded[1:2], D.doctor(loaded[1:2], processor, 2048))


def test_video_row_when_video_decoding_is_unavailable(folder, processor, monkeypatch):
    shutil.copy(SFT.parent / "video" / "clip.mp4", folder / "clip.mp4")
    rows = D.load_rows(write_jsonl(folder / "v.jsonl", [
        glm(), {"messages": [{"role": "user", "content": "<video>What happens?"}, {"role": "assistant", "content": GOOD}],
                "videos": ["clip.mp4"]}]))
    from studio.engine.infer import media

    def no_video(*a, **k):
        raise MediaError("video decoding is unavailable (PyAV is not installed); install av.")

    monkeypatch.setattr(media, "load_video", no_video)
    rep = D.doctor(rows, processor, 2048)
    assert checks(rep, 1) == set()
    [p] = [p for p in rep.problems if p.row == 2]
    assert p.check == "files" and "unavailable" in p.message


def test_4k_image_with_max_length_512_is_resized_not_cut(folder, processor):
    from PIL import Image

    Image.new("RGB", (3840, 2160), (200, 120, 40)).save(folder / "img" / "big.png")
    proc = processor
    old = dict(proc.image_processor.size)
    proc.image_processor.size = {"shortest_edge": 28 * 28, "longest_edge": 1024 * 1024}  # real-model-like budget
    try:
        rows = D.load_rows(write_jsonl(folder / "b.jsonl", [glm(images=("img/big.png",))]))
        rep = D.doctor(rows, proc, 512)
        assert rep.total_tokens[0] > 512
        plan = rep.plan[0]
        assert plan["action"] == "resize" and 0 < plan["scale"] < 1 and plan["tokens"] <= 512
        assert checks(rep, 1) == {("length", "warning")}
        kept, counts = D.plan_rows(rows, rep)
        assert counts["resized"] == 1
        batch = D.Collator(proc, max_length=512)(kept)
        ids = batch["input_ids"][0]
        assert len(ids) == plan["tokens"] <= 512
        image_id = proc.tokenizer.convert_tokens_to_ids("<|image|>")
        t, h, w = batch["image_grid_thw"][0].tolist()
        assert int((ids == image_id).sum()) == t * h * w // 4  # the whole image span is there
        assert int((batch["labels"][0] != -100).sum()) > 0
        skip = D.doctor(rows, proc, 512, oversize="skip")
        assert skip.plan[0]["action"] == "skip"
    finally:
        proc.image_processor.size = old


# ----------------------------------------------------------------------------- auto-fix
def test_auto_fix(folder):
    rows = D.load_rows(write_jsonl(folder / "d.jsonl", [
        glm(a="<think>x</think><answer>A cat."), glm(a="<answer>A cat.</answer>"), glm(a="A cat."), glm()]))
    fixed, n = D.auto_fix(rows, ["close_answer"])
    assert n == 1 and fixed[0].messages[1]["content"] == "<think>x</think><answer>A cat.</answer>"
    assert fixed[1].messages == rows[1].messages
    fixed, n = D.auto_fix(rows, ["close_answer", "add_empty_think"])
    assert n == 3
    assert fixed[1].messages[1]["content"] == "<think>\n</think><answer>A cat.</answer>"
    assert fixed[2].messages[1]["content"] == "<think>\n</think><answer>A cat.</answer>"
    assert fixed[3].messages == rows[3].messages
    assert all(D.check_tags(r.messages[1]["content"]) == [] for r in fixed)
    out = D.save_rows(fixed, folder / "fixed.jsonl")
    again = D.load_rows(out)
    assert [r.messages for r in again] == [r.messages for r in fixed]
    with pytest.raises(DataError, match="Unknown auto-fix"):
        D.auto_fix(rows, ["rm -rf"])


# ----------------------------------------------------------------------------- template / mask
def test_training_template_renders_like_the_inference_template(processor):
    train = D.train_template()
    sets = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "S"},
         {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q1"}]},
         {"role": "assistant", "content": "<think>r1</think><answer>A1</answer>"},
         {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q2"}]},
         {"role": "assistant", "content": "<think>r2</think><answer>A2</answer>"}],
        [{"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image"}, {"type": "text", "text": "B"}]},
         {"role": "assistant", "content": "plain", "metadata": "meta"}],
    ]
    for msgs in sets:
        for gen in (False, True):
            a = processor.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=False)
            b = processor.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=False, chat_template=train)
            assert a == b
    assert "{% generation %}" in train


def _trained_text(processor, batch, i=0):
    ids = batch["input_ids"][i][batch["labels"][i] != -100]
    return processor.tokenizer.decode(ids, skip_special_tokens=False)


@pytest.mark.parametrize("policy,expected", [
    ("last_thinking", "<think>r2</think><answer>A2</answer>"),
    ("answer_only", "<answer>A2</answer>"),
    ("all_turns", "<think>r1</think><answer>A1</answer><|user|><think>r2</think><answer>A2</answer>"),
])
def test_trained_mask_equals_the_assistant_spans(folder, processor, policy, expected):
    rows = D.load_rows(write_jsonl(folder / "m.jsonl", [
        {"messages": [{"role": "user", "content": "<image>Q1"},
                      {"role": "assistant", "content": "<think>r1</think><answer>A1</answer>"},
                      {"role": "user", "content": "Q2"},
                      {"role": "assistant", "content": "<think>r2</think><answer>A2</answer>"}],
         "images": ["img/cat.jpg"]}, glm()]))
    batch = D.Collator(processor, max_length=None, policy=policy)(rows)
    assert _trained_text(processor, batch, 0) == expected
    assert _trained_text(processor, batch, 1) == (GOOD if policy != "answer_only" else "<answer>A cat.</answer>")
    # padding and the prompt carry no loss; the history keeps only the answer unless all_turns
    text = processor.tokenizer.decode(batch["input_ids"][0][batch["attention_mask"][0] == 1])
    assert ("<think>r1</think>" in text) == (policy == "all_turns")
    preview = D.render_preview(rows[0], processor, policy)
    assert "".join(t for t, on in preview if on) == expected
    assert preview[0][1] is False and "<|image|>×" in preview[0][0]


def test_doctor_token_count_matches_the_collator(folder, processor):
    rows = D.load_rows(write_jsonl(folder / "c.jsonl", [glm(), glm(images=("img/cat.jpg", "img/coffee.jpg"))]))
    rep = D.doctor(rows, processor, 4096)
    for i, row in enumerate(rows):
        batch = D.Collator(processor)([row])
        assert batch["input_ids"].shape[1] == rep.total_tokens[i]
        assert int((batch["mm_token_type_ids"][0] != 0).sum()) == rep.visual_tokens[i]


def test_sample_set_is_clean(processor):
    rows = D.load_rows(SFT / "train.jsonl")
    assert 24 <= len(rows) <= 40
    rep = D.doctor(rows, processor, 1024)
    assert rep.summary["errors"] == 0 and rep.summary["warnings"] == 0


# ----------------------------------------------------------------------------- issue 16
def test_doctor_refuses_images_and_a_video_in_one_row(folder, processor):
    shutil.copy(SFT.parent / "video" / "clip.mp4", folder / "clip.mp4")
    video_row = {"messages": [{"role": "user", "content": "<video>What happens?"},
                              {"role": "assistant", "content": GOOD}], "videos": ["clip.mp4"]}
    rows = D.load_rows(write_jsonl(folder / "mix.jsonl", [
        glm(),                                                                            # 1 images only
        video_row,                                                                        # 2 one video
        {**video_row, "messages": [{"role": "user", "content": "<image><video>What?"},
                                   {"role": "assistant", "content": GOOD}], "images": ["img/cat.jpg"]},  # 3 both
        {**video_row, "messages": [{"role": "user", "content": "<video><video>What?"},
                                   {"role": "assistant", "content": GOOD}], "videos": ["clip.mp4"] * 2},  # 4 two
    ]))
    rep = D.doctor(rows, processor, 4096)
    assert checks(rep, 1) == set() and checks(rep, 2) == set()
    assert checks(rep, 3) == {("media", "error")} and checks(rep, 4) == {("media", "error")}
    [p3] = [p for p in rep.problems if p.row == 3]
    assert p3.message == ("holds 1 image and 1 video; GLM-4.1V takes images or one video per sample, "
                          "not both")
    kept, counts = D.plan_rows(rows, rep)
    assert [r.meta["line"] for r in kept] == [1, 2] and counts["skipped_errors"] == 2
    assert "**4 rows** · 2 errors in 2 rows · 0 warnings" in rep.to_markdown()


def test_doctor_wording_is_singular_for_one_and_rows_are_one_based(folder, processor):
    (folder / "bad.jsonl").write_text(json.dumps(glm()) + "\n" + json.dumps(glm()) + "\n{oops\n")
    rows, rep = D.diagnose(folder / "bad.jsonl", processor, 2048)
    md = rep.to_markdown()
    assert md.startswith("**2 rows** · 1 error · 0 warnings"), md
    assert "| line 3 | error | json |" in md and "| 0" not in md
    assert rep.table()[0][:3] == ["", 3, "error"]
    assert D.plural(1, "error") == "1 error" and D.plural(2, "row") == "2 rows"


def _rendered_text(md: str) -> str:
    """What a reader sees of ``md`` in a Markdown view that passes HTML through (gradio's)."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    out: list[str] = []
    parser = HTMLParser()
    parser.handle_data = out.append
    parser.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(md))
    return "".join(out)


def test_doctor_markdown_shows_angle_bracket_words_as_written(folder, processor):
    """Issue 28 item 1: a Markdown view took <image> and </answer> for HTML tags and dropped
    them from the summary ("with  tags") and the problem/fix cells ("missing ")."""
    bad = glm(a="<think>x</think><answer>A cat.", images=("img/cat.jpg", "img/cat.jpg"))
    bad["images"] = ["img/cat.jpg"]
    rows, rep = D.diagnose(write_jsonl(folder / "d.jsonl", [glm(), bad]), processor, 2048)
    for md in (rep.to_markdown(), rep.to_markdown(table=False)):
        seen = _rendered_text(md)
        assert "fine-tune messages (role/content with <image> tags" in seen, seen
    seen = _rendered_text(rep.to_markdown())
    assert "missing </answer>" in seen and "close the answer with </answer>" in seen
    assert "2 <image> placeholders but 1 images listed" in seen
    assert D.md_literal("a < b, <think>x</think> (or <answer>).") == "a < b, `<think>x</think>` (or `<answer>`)."
    assert D.md_literal("`<image>` stays") == "`<image>` stays"
