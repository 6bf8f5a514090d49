"""Build sample_data/sft/: a small SFT set in GLM-4.1V's fine-tune format.

Images are small copies (longest side 160 px) and crops of the three CC0 / public-domain
photos in ../photos (see ../LICENSE.md). Every answer follows the target format
``<think>…</think><answer>…</answer>``; some rows are two-turn chats. Run from the repo
root: ``python sample_data/sft/make_sft.py`` (deterministic; rewrites train.jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parent / "photos"

# (image name, source photo, crop box as fractions or None)
IMAGES = {
    "cat.jpg": ("chelsea.jpg", None),
    "cat_face.jpg": ("chelsea.jpg", (0.25, 0.0, 0.85, 0.75)),
    "astronaut.jpg": ("astronaut.jpg", None),
    "astronaut_flag.jpg": ("astronaut.jpg", (0.0, 0.0, 0.45, 0.55)),
    "coffee.jpg": ("coffee.jpg", None),
    "coffee_cup.jpg": ("coffee.jpg", (0.2, 0.1, 0.8, 0.9)),
}

QA = {
    "cat.jpg": [
        ("What animal is in the picture?", "The photo shows fur, whiskers, pointed ears and a striped coat.", "A cat."),
        ("What color is the cat?", "The coat is orange-brown with darker stripes.", "Orange with dark stripes (a tabby)."),
        ("Is the cat sleeping?", "Its eyes are open and it looks to the side.", "No, it is awake."),
        ("How many cats are there?", "I see a single animal in the frame.", "<|begin_of_box|>1<|end_of_box|>"),
        ("图中是什么动物？", "图片里有胡须、尖耳朵和条纹毛。", "一只猫。"),
    ],
    "cat_face.jpg": [
        ("What part of the animal is shown?", "The crop holds the head: eyes, nose and whiskers.", "The face of a cat."),
        ("Which way is the cat looking?", "Its head is turned and its eyes point to the side of the frame.", "To the side, not at the camera."),
    ],
    "astronaut.jpg": [
        ("Who or what is in the picture?", "A person in an orange suit with patches stands in front of a flag.", "An astronaut in a flight suit."),
        ("What color is the suit?", "The suit covering the body is bright orange.", "Orange."),
        ("Is the person smiling?", "The corners of the mouth are raised.", "Yes, the person is smiling."),
        ("How many people are in the photo?", "Only one person is visible.", "<|begin_of_box|>1<|end_of_box|>"),
        ("What is behind the person?", "On the left there are stars and stripes.", "A flag of the United States."),
    ],
    "astronaut_flag.jpg": [
        ("What is shown in this crop?", "Red and white stripes with a blue field of stars.", "Part of the United States flag."),
        ("What colors do you see?", "Stripes of red and white and a blue area.", "Red, white and blue."),
    ],
    "coffee.jpg": [
        ("What is on the table?", "A white cup on a saucer holds a dark drink with foam art.", "A cup of coffee on a saucer."),
        ("What color is the cup?", "The cup and saucer are white.", "White."),
        ("Is there a spoon?", "A metal spoon lies on the saucer next to the cup.", "Yes, on the saucer."),
        ("How many cups are there?", "There is one cup in the picture.", "<|begin_of_box|>1<|end_of_box|>"),
        ("What is the table made of?", "The surface shows wood grain in brown tones.", "Wood."),
    ],
    "coffee_cup.jpg": [
        ("What drink is this?", "The drink is brown with milk foam on top.", "A coffee with milk (a latte or cappuccino)."),
        ("Is the cup full?", "The foam reaches near the rim.", "Yes, it is nearly full."),
    ],
}

TWO_TURN = [
    ("cat.jpg", ("What animal is this?", "Fur, whiskers and pointed ears.", "A cat."),
     ("Is it indoors or outdoors?", "The background is a plain indoor surface.", "Indoors.")),
    ("coffee.jpg", ("What is in the cup?", "Dark liquid with foam.", "Coffee."),
     ("Is it hot or cold?", "Foam art on top is typical for a freshly made hot coffee.", "Most likely hot.")),
    ("astronaut.jpg", ("What is the person wearing?", "An orange suit with patches.", "A flight suit."),
     ("What is their job?", "The suit and the patches belong to a space program.", "An astronaut.")),
]


def fmt(think: str, answer: str) -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def main() -> None:
    (HERE / "images").mkdir(exist_ok=True)
    for name, (src, box) in IMAGES.items():
        im = Image.open(PHOTOS / src).convert("RGB")
        if box:
            w, h = im.size
            im = im.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
        im.thumbnail((160, 160))
        im.save(HERE / "images" / name, quality=88)
    rows = []
    for name, qas in QA.items():
        for q, think, ans in qas:
            rows.append({"messages": [{"role": "user", "content": f"<image>{q}"},
                                      {"role": "assistant", "content": fmt(think, ans)}],
                         "images": [f"images/{name}"]})
    for name, (q1, t1, a1), (q2, t2, a2) in TWO_TURN:
        rows.append({"messages": [{"role": "user", "content": f"<image>{q1}"},
                                  {"role": "assistant", "content": fmt(t1, a1)},
                                  {"role": "user", "content": q2},
                                  {"role": "assistant", "content": fmt(t2, a2)}],
                     "images": [f"images/{name}"]})
    with open(HERE / "train.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows")


if __name__ == "__main__":
    main()
