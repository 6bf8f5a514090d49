"""Small data files in the shapes the ecosystem's projects ship, written by the tests.

Each builder writes one file (and its generated media) into a folder and returns its path.
The rows are our own, in the shapes documented by GLM-V's README (fine-tune example),
LLaMA-Factory (``data/mllm_demo.json``, ``dataset_info.json``, sharegpt/alpaca), ms-swift
(custom-dataset formats, GRPO rows with ``solution``), TRL (conversational VLM rows, Parquet
with embedded images), EasyR1 (geometry3k: ``problem`` / ``answer`` / image bytes) and verl
(geo3k preprocess: ``prompt`` messages, ``reward_model.ground_truth``).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

THINK = "<think>\nThe picture shows {x}.</think>\n<answer>{y}</answer>"


def image(path: Path, color: str = "red", size=(64, 48)) -> Path:
    """A small generated PNG/JPEG (a coloured rectangle on white)."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, "white")
    ImageDraw.Draw(im).rectangle([8, 8, size[0] - 8, size[1] - 8], fill=color)
    im.save(path)
    return path


def png_bytes(color: str = "blue", size=(56, 56)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _json(path: Path, rows, lines: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) if lines
            else json.dumps(rows, ensure_ascii=False, indent=2))
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- SFT
def glm_v_finetune(d: Path) -> Path:
    """GLM-V README: ``finetune.json``, two images tagged in two user turns, think/answer answers."""
    image(d / "media/1.jpg", "red")
    image(d / "media/2.jpg", "green")
    row = {"messages": [
        {"content": "<image>What colour is the block?", "role": "user"},
        {"content": THINK.format(x="a red block", y="It is red."), "role": "assistant"},
        {"content": "<image>And in this one?", "role": "user"},
        {"content": THINK.format(x="a green block", y="It is green."), "role": "assistant"}],
        "images": ["media/1.jpg", "media/2.jpg"]}
    return _json(d / "finetune.json", [row, row], lines=False)


def llamafactory_folder(d: Path) -> Path:
    """LLaMA-Factory's ``data/`` folder: ``dataset_info.json`` with an mllm_demo-style entry
    (role/content tags, answers without thinking, multi-turn) and a sharegpt entry with custom
    column, key and role names; returns the folder."""
    image(d / "mllm_demo_data/1.jpg", "orange")
    image(d / "mllm_demo_data/2.jpg", "purple")
    demo = [{"messages": [{"content": f"<image>Which colour is shown? ({i})", "role": "user"},
                          {"content": "Orange.", "role": "assistant"},
                          {"content": "Is it dark?", "role": "user"},
                          {"content": "No, it is bright.", "role": "assistant"}],
             "images": ["mllm_demo_data/1.jpg"]} for i in range(3)]
    _json(d / "mllm_demo.json", demo, lines=False)
    custom = [{"dialog": [{"speaker": "customer", "text": "<image>What is the colour?"},
                          {"speaker": "agent", "text": THINK.format(x="purple", y="Purple.")}],
               "pics": ["mllm_demo_data/2.jpg"], "prompt_sys": "You describe colours."}]
    _json(d / "custom.json", custom, lines=False)
    shutil.copy(Path(__file__).resolve().parents[1] / "sample_data" / "video" / "clip.mp4", d / "mllm_demo_data/1.mp4")
    _json(d / "mllm_video_demo.json", [{"messages": [{"content": "<video>What happens?", "role": "user"},
                                                     {"content": "A cat walks.", "role": "assistant"}],
                                        "videos": ["mllm_demo_data/1.mp4"]}], lines=False)
    (d / "mllm_demo_data/1.mp3").write_bytes(b"ID3")
    _json(d / "mllm_audio_demo.json", [{"messages": [{"content": "<audio>What's that sound?", "role": "user"},
                                                     {"content": "Glass breaking.", "role": "assistant"}],
                                        "audios": ["mllm_demo_data/1.mp3"]}], lines=False)
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    info = {
        "mllm_demo": {"file_name": "mllm_demo.json", "formatting": "sharegpt",
                      "columns": {"messages": "messages", "images": "images"},
                      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                               "assistant_tag": "assistant"}},
        "custom_chat": {"file_name": "custom.json", "formatting": "sharegpt",
                        "columns": {"messages": "dialog", "images": "pics", "system": "prompt_sys"},
                        "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "customer",
                                 "assistant_tag": "agent"}},
        "mllm_video_demo": {"file_name": "mllm_video_demo.json", "formatting": "sharegpt",
                            "columns": {"messages": "messages", "videos": "videos"}, "tags": tags},
        "mllm_audio_demo": {"file_name": "mllm_audio_demo.json", "formatting": "sharegpt",
                            "columns": {"messages": "messages", "audios": "audios"}, "tags": tags},
        "alpaca_en": {"hf_hub_url": "llamafactory/alpaca_en"},
    }
    (d / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return d


def sharegpt(d: Path) -> Path:
    """LLaMA-Factory sharegpt rows: ``conversations`` from/value, human/gpt/system, ``system`` column."""
    image(d / "img/a.png", "blue")
    rows = [{"conversations": [{"from": "human", "value": "<image>What shape is blue?"},
                               {"from": "gpt", "value": THINK.format(x="a blue rectangle", y="A rectangle.")}],
             "system": "Answer briefly.", "images": ["img/a.png"]},
            {"conversations": [{"from": "system", "value": "You are exact."},
                               {"from": "human", "value": "<image>How many shapes?"},
                               {"from": "gpt", "value": THINK.format(x="one rectangle", y="One.")}],
             "images": ["img/a.png"]}]
    return _json(d / "sharegpt.jsonl", rows, lines=True)


def swift_messages(d: Path) -> Path:
    """ms-swift standard rows: ``messages`` with a system turn, absolute image paths (as its docs show)."""
    img = image(d.parent / f"{d.name}-elsewhere" / "x.jpg", "yellow").resolve()
    rows = [{"messages": [{"role": "system", "content": "You are a useful and harmless assistant"},
                          {"role": "user", "content": "<image>What is in the image?"},
                          {"role": "assistant", "content": THINK.format(x="a yellow block", y="A yellow block.")}],
             "images": [str(img)]},
            {"messages": [{"role": "user", "content": "<image>Colour?"},
                          {"role": "assistant", "content": THINK.format(x="yellow", y="Yellow.")}],
             "system": "Answer in one word.", "images": [str(img)]}]
    return _json(d / "swift_messages.jsonl", rows, lines=True)


def swift_query_response(d: Path) -> Path:
    """ms-swift query/response/history rows with a system prompt."""
    image(d / "q.png", "green")
    rows = [{"system": "You are a careful observer.", "query": "And its colour?",
             "response": THINK.format(x="green", y="Green."),
             "history": [["<image>What is shown?", THINK.format(x="a block", y="A block.")]], "images": ["q.png"]}]
    return _json(d / "swift_qr.jsonl", rows, lines=True)


def swift_conversation(d: Path) -> Path:
    """ms-swift system + conversation rows."""
    image(d / "c.png", "red")
    rows = [{"system": "Be brief.", "conversation": [
        {"human": "<image>What colour?", "assistant": THINK.format(x="red", y="Red.")},
        {"human": "Is it a circle?", "assistant": THINK.format(x="a rectangle", y="No.")}], "images": ["c.png"]}]
    return _json(d / "swift_conversation.jsonl", rows, lines=True)


def trl_conversational(d: Path) -> Path:
    """TRL conversational rows: a placeholder filled from ``images``, an item naming its
    image by path, and an OpenAI ``image_url`` data URL."""
    image(d / "t.png", "blue")
    url = "data:image/png;base64," + base64.b64encode(png_bytes("green")).decode()
    answer = [{"type": "text", "text": THINK.format(x="a block", y="A block.")}]
    rows = [{"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
                          {"role": "assistant", "content": answer}], "images": ["t.png"]},
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "Describe "},
                                                       {"type": "image", "image": "t.png"}]},
                          {"role": "assistant", "content": THINK.format(x="blue", y="Blue.")}]},
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                       {"type": "text", "text": "Colour?"}]},
                          {"role": "assistant", "content": answer}]}]
    return _json(d / "trl.jsonl", rows, lines=True)


def trl_parquet(d: Path) -> Path:
    """TRL's VLM datasets as Parquet: ``images`` an Image column (bytes inside), content lists."""
    import datasets
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    img = Image.open(io.BytesIO(png_bytes("purple")))
    rows = {"images": [[img], [img]],
            "messages": [[{"role": "user", "content": [{"type": "image", "text": None},
                                                       {"type": "text", "text": "What colour?"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": THINK.format(x="purple",
                                                                                                   y="Purple.")}]}]] * 2}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({
        "images": datasets.List(datasets.Image()),
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.List(
            {"type": datasets.Value("string"), "text": datasets.Value("string")})})}))
    out = d / "trl_train.parquet"
    ds.to_parquet(str(out))
    return out


def prompt_completion(d: Path) -> Path:
    image(d / "p.png", "red")
    rows = [{"prompt": "<image>What colour?", "completion": THINK.format(x="red", y="Red."), "images": ["p.png"]}]
    return _json(d / "pc.jsonl", rows, lines=True)


def alpaca(d: Path) -> Path:
    """Alpaca rows (LLaMA-Factory / ms-swift) with a system prompt and an image."""
    image(d / "al.png", "orange")
    rows = [{"instruction": "<image>Describe the block.", "input": "One sentence.",
             "output": THINK.format(x="an orange block", y="An orange block."), "system": "Be exact.",
             "images": ["al.png"]}]
    return _json(d / "alpaca.json", rows, lines=False)


SFT_BUILDERS = {
    "glm_finetune": glm_v_finetune, "sharegpt": sharegpt, "swift_messages": swift_messages,
    "swift_query_response": swift_query_response, "swift_conversation": swift_conversation,
    "trl_conversational": trl_conversational, "trl_parquet": trl_parquet, "prompt_completion": prompt_completion,
    "alpaca": alpaca,
}


# ----------------------------------------------------------------------------- RL
def easyr1_parquet(d: Path) -> Path:
    """EasyR1 geometry3k: ``images`` (Image column, bytes), ``problem`` with <image>, ``answer``."""
    import datasets
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    rows = {"images": [[Image.open(io.BytesIO(png_bytes(c)))] for c in ("red", "green", "blue", "white")],
            "problem": [f"<image>Find x. Choices: A: {i} B: {i + 1}" for i in range(4)],
            "answer": [str(i) for i in range(4)]}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({
        "images": datasets.List(datasets.Image()), "problem": datasets.Value("string"),
        "answer": datasets.Value("string")}))
    out = d / "geometry3k_train.parquet"
    ds.to_parquet(str(out))
    return out


def easyr1_jsonl(d: Path, suffix: str = ".jsonl") -> Path:
    """EasyR1 rows as JSONL/JSON with image paths."""
    image(d / "geo/1.png", "red")
    rows = [{"problem": f"<image>What is the value of x? ({i})", "answer": str(2 + i), "images": ["geo/1.png"]}
            for i in range(4)]
    return _json(d / f"geo{suffix}", rows, lines=suffix == ".jsonl")


def verl_parquet(d: Path) -> Path:
    """verl geo3k preprocess output: prompt as messages, images bytes, reward_model.ground_truth."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d.mkdir(parents=True, exist_ok=True)
    rows = [{"data_source": "geometry", "prompt": [{"role": "user", "content":
                                                    f"<image>Find the angle. ({i}) Please reason step by step."}],
             "images": [{"bytes": png_bytes("gray"), "path": None}], "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": str(30 + i)},
             "extra_info": {"split": "train", "index": i}} for i in range(4)]
    out = d / "verl_train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out


def swift_grpo(d: Path) -> Path:
    """ms-swift GRPO rows: ``messages`` (system + user), ``solution`` in <answer> tags, absolute paths."""
    img = image(d / "clevr/1.png", "blue").resolve()
    rows = [{"messages": [{"role": "system", "content": "Think first, then answer in <answer></answer>."},
                          {"role": "user", "content": f"<image>How many items are there? ({i})"}],
             "solution": f"<answer> {i + 1} </answer>", "images": [str(img)]} for i in range(4)]
    return _json(d / "clevr_grpo.jsonl", rows, lines=True)


def r1v_geoqa(d: Path) -> Path:
    """R1-V / ms-swift GEOQA rows: ``problem``, ``solution``, a single ``image``."""
    image(d / "g.png", "green")
    rows = [{"problem": f"As shown in the figure, find the length. ({i})", "solution": f"<answer>{5 + i}</answer>",
             "image": "g.png"} for i in range(4)]
    return _json(d / "geoqa.jsonl", rows, lines=True)


RL_BUILDERS = {"easyr1_parquet": easyr1_parquet, "easyr1_jsonl": easyr1_jsonl,
               "easyr1_json": lambda d: easyr1_jsonl(d, ".json"), "verl_parquet": verl_parquet,
               "swift_grpo": swift_grpo, "r1v_geoqa": r1v_geoqa}
