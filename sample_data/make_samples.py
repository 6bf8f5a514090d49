"""Regenerate the sample video and PDF from the committed photos (deterministic).

    python sample_data/make_samples.py            # writes video/clip.mp4 and docs/sample.pdf
    python sample_data/make_samples.py --photos   # also re-exports photos/ from scikit-image

The photos are public-domain / CC0 pictures shipped inside scikit-image's package data
(see LICENSE.md). The video is a 3.6 s, 10 fps, 384×256 H.264 clip (slow pan and zoom over
each photo, with crossfades), written with PyAV. The PDF is two pages written by hand in
plain PDF 1.4: page 1 holds real text (Helvetica, so any PDF tool can extract it), page 2
the coffee photo embedded as JPEG with a caption.

Same photos + same PyAV/libx264 versions → byte-identical outputs (single-threaded
encoder, fixed settings, no timestamps in the PDF).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
PHOTOS = HERE / "photos"
#: (file name, scikit-image loader name). Only photos that scikit-image documents as
#: public domain or CC0.
PHOTO_SOURCES = [("astronaut.jpg", "astronaut"), ("coffee.jpg", "coffee"), ("chelsea.jpg", "chelsea")]
VIDEO = HERE / "video" / "clip.mp4"
PDF = HERE / "docs" / "sample.pdf"

FPS = 10
SIZE = (384, 256)  # width, height (even, for yuv420p)
FRAMES_PER_PHOTO = 12
FADE = 4  # frames of crossfade into the next photo


def export_photos() -> None:
    """Write photos/*.jpg from scikit-image's bundled data (longest side ≤ 640)."""
    import skimage.data

    PHOTOS.mkdir(parents=True, exist_ok=True)
    for fname, loader in PHOTO_SOURCES:
        img = Image.fromarray(getattr(skimage.data, loader)()).convert("RGB")
        img.thumbnail((640, 640), Image.Resampling.LANCZOS)
        img.save(PHOTOS / fname, "JPEG", quality=88, optimize=True)


def _pan_frame(photo: Image.Image, u: float) -> Image.Image:
    """Crop of ``photo`` at progress ``u`` ∈ [0, 1]: zoom 100 % → 80 %, drifting right/down."""
    w, h = photo.size
    target = SIZE[0] / SIZE[1]
    cw, ch = (w, w / target) if w / h < target else (h * target, h)
    zoom = 1.0 - 0.2 * u
    cw, ch = cw * zoom, ch * zoom
    x0 = (w - cw) * (0.2 + 0.6 * u)
    y0 = (h - ch) * (0.3 + 0.4 * u)
    box = (x0, y0, x0 + cw, y0 + ch)
    return photo.resize(SIZE, Image.Resampling.BICUBIC, box=box)


def video_frames() -> list[np.ndarray]:
    """The clip's frames, uint8 (H, W, 3): each photo panned, crossfading into the next."""
    photos = [Image.open(PHOTOS / f).convert("RGB") for f, _ in PHOTO_SOURCES]
    frames = []
    for k, photo in enumerate(photos):
        for j in range(FRAMES_PER_PHOTO):
            frame = np.asarray(_pan_frame(photo, j / (FRAMES_PER_PHOTO - 1)), dtype=np.float32)
            nxt = k + 1
            fade_pos = j - (FRAMES_PER_PHOTO - FADE)
            if nxt < len(photos) and fade_pos >= 0:
                a = (fade_pos + 1) / (FADE + 1)
                other = np.asarray(_pan_frame(photos[nxt], 0.0), dtype=np.float32)
                frame = (1 - a) * frame + a * other
            frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return frames


def write_video(path: Path = VIDEO) -> Path:
    """Encode :func:`video_frames` as H.264 MP4 with PyAV (mpeg4 if libx264 is missing)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        av.codec.Codec("libx264", "w")
        codec, options = "libx264", {"crf": "26", "preset": "medium", "threads": "1"}
    except Exception:  # a PyAV wheel without libx264
        codec, options = "mpeg4", {"qscale": "5"}
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=FPS, options=options)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.codec_context.thread_count = 1
        for arr in video_frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _pdf_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


PAGE1 = [
    (20, "GLM-4.1V Studio - sample document"),
    (12, ""),
    (12, "This two-page PDF is part of the sample data of GLM-4.1V Studio."),
    (12, "The chat tab renders every page to an image and sends the pages to the"),
    (12, "model, so you can ask questions about text, tables and photos in a PDF."),
    (12, ""),
    (14, "Photos in the sample data"),
    (12, "1. astronaut.jpg - the astronaut Eileen Collins (NASA, public domain)."),
    (12, "2. coffee.jpg - a cup of coffee on a wooden table (CC0)."),
    (12, "3. chelsea.jpg - Chelsea the cat (CC0)."),
    (12, ""),
    (14, "A small table"),
    (12, "Item            Count    Colour"),
    (12, "Coffee cups     1        white"),
    (12, "Cats            1        ginger"),
    (12, "Astronauts      1        orange suit"),
    (12, ""),
    (12, "Question to try: How many photos are listed on this page?"),
    (12, "Expected answer: three."),
]
PAGE2_CAPTION = "Figure 1. A cup of coffee (photo: Rachel Michetti, CC0)."


def write_pdf(path: Path = PDF) -> Path:
    """Write the 2-page sample PDF (A4; text page + photo page) as plain PDF 1.4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    W, H = 595, 842  # A4 in points
    jpeg = (PHOTOS / "coffee.jpg").read_bytes()
    with Image.open(io.BytesIO(jpeg)) as im:
        iw, ih = im.size

    lines, y = ["BT", "/F1 12 Tf"], H - 72
    for size, text in PAGE1:
        y -= int(size * 1.5)
        lines.append(f"/F1 {size} Tf 1 0 0 1 72 {y} Tm ({_pdf_text(text)}) Tj")
    lines.append("ET")
    content1 = "\n".join(lines).encode("latin-1")

    dw = W - 144
    dh = round(dw * ih / iw)
    top = H - 100
    content2 = (
        f"q {dw} 0 0 {dh} 72 {top - dh} cm /Im1 Do Q\n"
        f"BT /F1 12 Tf 1 0 0 1 72 {top - dh - 24} Tm ({_pdf_text(PAGE2_CAPTION)}) Tj ET\n"
        f"BT /F1 16 Tf 1 0 0 1 72 {H - 72} Tm (Page 2: a photo) Tj ET"
    ).encode("latin-1")

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {W} {H}] "
         f"/Resources << /Font << /F1 5 0 R >> >> /Contents 6 0 R >>").encode(),
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {W} {H}] "
         f"/Resources << /Font << /F1 5 0 R >> /XObject << /Im1 7 0 R >> >> "
         f"/Contents 8 0 R >>").encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content1) + content1 + b"\nendstream",
        (f"<< /Type /XObject /Subtype /Image /Width {iw} /Height {ih} /ColorSpace /DeviceRGB "
         f"/BitsPerComponent 8 /Filter /DCTDecode /Length {len(jpeg)} >>\nstream\n").encode()
        + jpeg + b"\nendstream",
        b"<< /Length %d >>\nstream\n" % len(content2) + content2 + b"\nendstream",
        b"<< /Title (GLM-4.1V Studio sample document) /Producer (sample_data/make_samples.py) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, len(objects), xref))
    path.write_bytes(bytes(out))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", action="store_true", help="re-export photos/ from scikit-image")
    args = ap.parse_args(argv)
    if args.photos:
        export_photos()
    print(write_video())
    print(write_pdf())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
