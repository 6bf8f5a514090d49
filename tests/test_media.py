"""Media rules (studio/engine/infer/media/): every bad input from issue 2 gets a clear
MediaError; good input — including the committed sample data — reaches the tiny
GLM-4.1V processor with the shapes, timestamps and token counts the model expects.

Bad files are generated in tmp_path; nothing here needs a network or a GPU.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from studio.engine.infer import media as M
from studio.engine.infer.media import video as video_mod
from studio.errors import InputError, MediaError, StudioError

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
PHOTOS = sorted((SAMPLE / "photos").glob("*.jpg"))
CLIP = SAMPLE / "video" / "clip.mp4"
PDF = SAMPLE / "docs" / "sample.pdf"


# ----------------------------------------------------------------------------- helpers

def write_png(path: Path, w: int, h: int, *, bitdepth: int = 8, color_type: int = 0, fill: int = 128) -> Path:
    """Write a solid PNG straight from zlib (fast even for 144 MP: it compresses ~1000:1)."""
    channels = {0: 1, 2: 3}[color_type]
    row = b"\x00" + bytes([fill]) * ((w * channels * bitdepth + 7) // 8)
    co = zlib.compressobj(1)
    data = b"".join([co.compress(row) for _ in range(h)] + [co.flush()])

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", w, h, bitdepth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def write_video(path: Path, n: int, *, fps: int = 10, size=(64, 48), fmt: str | None = None,
                rotation: int | None = None) -> Path:
    """H.264 clip whose frame i is filled with grey level 10*i (so frames are identifiable)."""
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(n):
            arr = np.full((size[1], size[0], 3), min(255, 10 * i), np.uint8)
            if rotation is not None:
                arr[:, : size[0] // 2] = 255  # left half white
            for p in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def write_audio_only(path: Path) -> Path:
    """1 s of a 440 Hz tone, AAC in an MP4 container (no video stream)."""
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=16000, layout="mono")
        tone = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def write_pdf_pages(path: Path, n: int) -> Path:
    """A PDF with ``n`` blank A6 pages, written with pypdfium2."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument.new()
    for _ in range(n):
        doc.new_page(298, 420)
    doc.save(str(path))
    doc.close()
    return path


def photo(tmp_path: Path, name: str, size=(64, 48), color=(200, 30, 30), mode="RGB", **save) -> Path:
    p = tmp_path / name
    Image.new(mode, size, color).save(p, **save)
    return p


def render(processor, content: list[dict]) -> str:
    msgs = [{"role": "user", "content": content + [{"type": "text", "text": "Describe."}]}]
    return processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def run_images(processor, images):
    text = render(processor, [{"type": "image"}] * len(images))
    return processor(text=[text], images=images, return_tensors="pt")


def run_video(processor, clip):
    text = render(processor, [{"type": "video"}])
    return processor(text=[text], videos=[clip.frames], return_tensors="pt",
                     **M.video_processor_kwargs([clip]))


def n_visual(processor, out) -> int:
    return int((out["input_ids"][0] == processor.image_token_id).sum())


@pytest.fixture(scope="module")
def processor():
    from studio.engine.infer.tiny import build_processor

    return build_processor()


# ----------------------------------------------------------------------------- constants

def test_limits_are_named_constants():
    assert (M.MAX_IMAGES, M.MAX_VIDEOS, M.MAX_PDFS, M.MAX_PDF_PAGES) == (10, 1, 1, 20)
    assert (M.MIN_SIDE, M.MAX_ASPECT, M.MAX_IMAGE_PIXELS) == (28, 200, 4096 * 4096)
    assert set(M.IMAGE_EXTS) == {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tiff", ".tif", ".gif"}
    assert set(M.VIDEO_EXTS) == {".mp4", ".webm", ".mov", ".mkv", ".avi"}
    assert M.PDF_EXTS == (".pdf",)
    assert issubclass(MediaError, StudioError)


# ----------------------------------------------------------------------------- kind_of

def test_kind_of_by_extension_and_content(tmp_path):
    assert M.kind_of(PHOTOS[0]) == "image"
    assert M.kind_of(CLIP) == "video"
    assert M.kind_of(PDF) == "pdf"
    for ext, fmt in [(".webp", "WEBP"), (".bmp", "BMP"), (".tif", "TIFF"), (".gif", "GIF")]:
        assert M.kind_of(photo(tmp_path, "x" + ext, format=fmt)) == "image"
    # content wins over a wrong suffix
    assert M.kind_of(photo(tmp_path, "really_png.jpg", format="PNG")) == "image"
    mp4_as_jpg = tmp_path / "clip.jpg"
    mp4_as_jpg.write_bytes(CLIP.read_bytes())
    assert M.kind_of(mp4_as_jpg) == "video"
    assert M.kind_of(write_video(tmp_path / "v.mkv", 3)) == "video"


def test_kind_of_refuses_unsupported_and_missing(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(MediaError, match="not a supported file type.*png.*mp4.*PDF"):
        M.kind_of(txt)
    with pytest.raises(MediaError, match="does not exist"):
        M.kind_of(tmp_path / "missing.png")
    with pytest.raises(MediaError, match="not a file"):
        M.kind_of(tmp_path)


# ----------------------------------------------------------------------------- images: bad input

@pytest.mark.parametrize("name", ["empty.png", "empty.jpg", "empty.mp4", "empty.pdf"])
def test_zero_byte_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    with pytest.raises(MediaError, match=r"is empty \(0 bytes\)"):
        M.prepare_turn_media([p])


def test_text_named_jpg(tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_text("this is not a picture, just text\n" * 10)
    with pytest.raises(MediaError, match="'photo.jpg' is not a decodable image"):
        M.kind_of(p)
    with pytest.raises(MediaError, match="not a decodable image"):
        M.load_image(p)


def test_truncated_png(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(MediaError, match="'cut.png' could not be decoded: the image data is truncated or corrupt"):
        M.load_image(cut)


def test_banner_aspect_refused(tmp_path):
    p = photo(tmp_path, "banner.png", size=(6000, 20))
    with pytest.raises(MediaError, match=r"6000×20 pixels, an aspect ratio of 300:1; the model accepts at most 200:1"):
        M.load_image(p)
    with pytest.raises(MediaError, match="200:1"):
        M.load_image(Image.new("RGB", (20, 6000)))


def test_aspect_exactly_200_is_accepted(tmp_path, processor):
    img = M.load_image(photo(tmp_path, "strip.png", size=(2000, 10)))
    assert img.size == (5600, 28)
    out = run_images(processor, [img])
    assert n_visual(processor, out) == M.image_tokens(img.height, img.width, processor.image_processor) > 0


def test_decompression_bomb_refused_before_decoding(tmp_path):
    p = write_png(tmp_path / "bomb.png", 20000, 10000, bitdepth=1, fill=0xFF)  # 200 MP
    with pytest.raises(MediaError, match=r"20000×10000 pixels \(200 MP, mode 1\); decoding it would take 381 MB, "
                                         r"and images over 96 MB decoded are refused"):
        M.load_image(p)


# ----------------------------------------------------------------------------- images: good input

@pytest.mark.parametrize("size", [(1, 1), (16, 16), (16, 40), (300, 10)])
def test_tiny_images_upscaled_and_processed(tmp_path, processor, size):
    p = photo(tmp_path, f"small_{size[0]}x{size[1]}.png", size=size)
    img = M.load_image(p)
    assert img.mode == "RGB" and min(img.size) == M.MIN_SIDE
    w, h = size
    assert abs(img.width / img.height - w / h) <= 0.05 * max(w / h, 1)  # aspect kept
    out = run_images(processor, [img])
    assert out["image_grid_thw"].shape == (1, 3)
    assert n_visual(processor, out) == M.estimate_visual_tokens(M.TurnMedia("image", [img]), processor)


def test_huge_image_downscaled(tmp_path):
    p = write_png(tmp_path / "huge.png", 6000, 6000, bitdepth=1, fill=0xAA)  # 36 MP: 72 MB to decode, within budget
    img = M.load_image(p)
    assert img.size == (4096, 4096) and img.mode == "RGB"
    assert img.width * img.height <= M.MAX_IMAGE_PIXELS
    assert abs(int(np.asarray(img)[100:200, 100:200].mean()) - 128) <= 2  # 1010… pattern → mid grey


def test_gif_first_frame_and_transparency_on_white(tmp_path):
    frames = [Image.new("P", (40, 40), 0), Image.new("P", (40, 40), 1)]
    palette = [255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6)
    for f in frames:
        f.putpalette(palette)
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert M.load_image(p).getpixel((20, 20)) == (255, 0, 0)

    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((0, 255, 0, 255), (0, 0, 20, 40))
    p2 = tmp_path / "alpha.png"
    rgba.save(p2)
    img = M.load_image(p2)
    assert img.getpixel((5, 5)) == (0, 255, 0) and img.getpixel((35, 5)) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (80, 40), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW to display
    p = tmp_path / "rotated.jpg"
    img.save(p, exif=exif.tobytes())
    assert M.load_image(p).size == (40, 80)


def test_formats_and_pil_input(tmp_path):
    for ext, fmt in [(".webp", "WEBP"), (".bmp", "BMP"), (".tiff", "TIFF"), (".jpeg", "JPEG")]:
        img = M.load_image(photo(tmp_path, "x" + ext, size=(50, 30), format=fmt))
        assert img.size == (50, 30) and img.mode == "RGB"
    assert M.load_image(Image.new("L", (10, 10), 7)).size == (28, 28)
    with pytest.raises(MediaError, match="is not an image"):
        M.load_image(CLIP)


# ----------------------------------------------------------------------------- video

def test_sample_clip_frames_and_metadata():
    clip = M.load_video(CLIP)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (8, 256, 384, 3)
    md = clip.metadata
    assert md["fps"] == pytest.approx(10.0) and md["total_num_frames"] == 36
    assert md["duration"] == pytest.approx(3.6) and (md["width"], md["height"]) == (384, 256)
    assert md["frames_indices"] == [0, 5, 10, 15, 20, 25, 30, 30]
    assert clip.timestamps == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5, 3, 3])
    # metadata is accepted as transformers' VideoMetadata
    from transformers.video_utils import VideoMetadata

    assert VideoMetadata(**md).timestamps == pytest.approx(clip.timestamps)


def test_video_through_processor_timestamps_and_tokens(processor):
    clip = M.load_video(CLIP)
    out = run_video(processor, clip)
    assert tuple(out["video_grid_thw"][0].tolist())[0] == 4  # 8 frames → 4 temporal pairs
    assert out["pixel_values_videos"].shape[0] == int(out["video_grid_thw"][0].prod())
    text = processor.tokenizer.decode(out["input_ids"][0])
    stamps = [int(s) for s in re.findall(r"<\|end_of_image\|>(\d+)", text)]
    assert stamps == [0, 1, 2, 3]  # not all 0: the processor saw the metadata
    est = M.estimate_visual_tokens(M.TurnMedia("video", video=clip), processor)
    assert n_visual(processor, out) == est == 96
    assert int((out["mm_token_type_ids"][0] == 2).sum()) == est


def test_one_frame_and_half_second_clips(tmp_path, processor):
    one = M.load_video(write_video(tmp_path / "one.mp4", 1))
    assert one.frames.shape[0] == 2 and one.metadata["frames_indices"] == [0, 0]
    half = M.load_video(write_video(tmp_path / "half.mp4", 5))  # 0.5 s at 10 fps
    assert half.frames.shape[0] == 2 and half.metadata["duration"] == pytest.approx(0.5)
    for clip in (one, half):
        out = run_video(processor, clip)
        assert out["video_grid_thw"][0, 0] == 1
        assert n_visual(processor, out) == M.estimate_visual_tokens(M.TurnMedia("video", video=clip), processor)


def test_sampling_rate_cap_and_even_count(tmp_path):
    p = write_video(tmp_path / "grey.mp4", 30)  # frame i has grey level 10*i
    clip = M.load_video(p, fps=10, max_frames=5)  # 30 wanted, capped at 4 (5 → even)
    assert clip.metadata["frames_indices"] == [0, 10, 19, 29]
    got = clip.frames[:, 10, 10, 0].astype(int)
    assert np.all(np.abs(got - np.array([0, 100, 190, 255])) <= 6)  # the right frames, in order
    assert M.load_video(p, fps=1).metadata["frames_indices"] == [0, 10, 20, 20]
    assert M.sample_indices(9000, 30, 2, 32)[-1] == 8999 and len(M.sample_indices(9000, 30, 2, 32)) == 32


def test_video_settings_validated():
    with pytest.raises(InputError, match="fps must be between"):
        M.load_video(CLIP, fps=0)
    with pytest.raises(InputError, match="max frames must be a whole number from 2"):
        M.load_video(CLIP, max_frames=1)


def test_mkv_without_frame_count_tiny_frames_and_rotation(tmp_path):
    mkv = write_video(tmp_path / "v.mkv", 15, size=(16, 16))
    with av.open(str(mkv)) as c:
        assert c.streams.video[0].frames == 0  # the estimate path is exercised
    clip = M.load_video(mkv)
    assert clip.frames.shape == (4, 28, 28, 3) and clip.metadata["total_num_frames"] == 15
    rot = M.load_video(write_video(tmp_path / "rot.mp4", 4, size=(64, 32), rotation=90))
    assert rot.frames.shape[1:3] == (64, 32)
    assert rot.frames[0, -1].mean() > 200 and rot.frames[0, 0].mean() < 60  # left half → bottom


def test_video_aspect_refused(tmp_path):
    p = write_video(tmp_path / "strip.mp4", 2, size=(4200, 16))  # 262:1
    with pytest.raises(MediaError, match="4200×16 pixels, an aspect ratio of 262:1; the model accepts at most 200:1"):
        M.load_video(p)


def test_header_overstating_frames_resamples(tmp_path, monkeypatch):
    p = write_video(tmp_path / "short.mp4", 6)
    monkeypatch.setattr(video_mod, "_probe", lambda path, name, deadline=None: (10.0, 3.0, 30))  # claims 30 frames
    clip = M.load_video(p, fps=10)
    assert clip.metadata["total_num_frames"] == 6
    assert max(clip.metadata["frames_indices"]) <= 5 and clip.frames.shape[0] % 2 == 0


def test_video_decoding_has_a_time_limit(tmp_path, monkeypatch):
    """A small file can hold hours of tiny frames, and decoding holds the server's one
    decoding slot: past VIDEO_DECODE_TIMEOUT_S the decode stops with a sentence, both when
    frames are counted (no frame count in the header) and while sampled frames are decoded."""
    monkeypatch.setattr(video_mod, "VIDEO_DECODE_TIMEOUT_S", 0.0)
    for p in (write_video(tmp_path / "v.mp4", 6), write_video(tmp_path / "v.mkv", 6, size=(16, 16))):
        with pytest.raises(MediaError, match=rf"'{p.name}' takes more than 0 s to decode .*Trim it"):
            M.load_video(p)


def test_audio_only_file(tmp_path):
    p = write_audio_only(tmp_path / "song.mp4")
    with pytest.raises(MediaError, match="'song.mp4' has no video stream"):
        M.load_video(p)
    with pytest.raises(MediaError, match="has no video stream"):
        M.prepare_turn_media([p])


def test_corrupt_mp4(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(1).integers(0, 255, 4000, np.uint8).tobytes())
    with pytest.raises(MediaError, match="'junk.mp4' is not a decodable video"):
        M.prepare_turn_media([junk])
    cut = tmp_path / "cut.mp4"  # real ftyp header, moov atom lost
    cut.write_bytes(CLIP.read_bytes()[: CLIP.stat().st_size // 2])
    with pytest.raises(MediaError, match="'cut.mp4' could not be decoded as a video"):
        M.load_video(cut)


# ----------------------------------------------------------------------------- PDF

def test_sample_pdf_pages_and_text():
    pages = M.load_pdf(PDF)
    assert len(pages) == 2 and all(p.mode == "RGB" and p.size == (794, 1123) for p in pages)
    assert np.asarray(pages[0]).min() < 50  # text is drawn
    arr = np.asarray(pages[1])[150:500, 120:650]
    assert arr.std() > 20  # the photo is there
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(PDF))
    assert "How many photos are listed on this page?" in doc[0].get_textpage().get_text_range()
    doc.close()
    assert M.load_pdf(PDF, dpi=48)[0].size == (397, 562)


def test_encrypted_pdf(tmp_path):
    import pypdf  # test-only dependency (dev extra): writes a really encrypted PDF

    w = pypdf.PdfWriter(clone_from=str(PDF))
    w.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    p = tmp_path / "locked.pdf"
    with open(p, "wb") as fh:
        w.write(fh)
    with pytest.raises(MediaError, match="'locked.pdf' is password-protected"):
        M.prepare_turn_media([p])


def test_empty_corrupt_and_long_pdfs(tmp_path):
    with pytest.raises(MediaError, match="'none.pdf' has no pages"):
        M.load_pdf(write_pdf_pages(tmp_path / "none.pdf", 0))
    with pytest.raises(MediaError, match=r"'long.pdf' has 21 pages; at most 20 pages per PDF"):
        M.prepare_turn_media([write_pdf_pages(tmp_path / "long.pdf", 21)])
    assert len(M.load_pdf(write_pdf_pages(tmp_path / "twenty.pdf", 20), dpi=24)) == 20
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + b"garbage " * 100)
    with pytest.raises(MediaError, match="'bad.pdf' is not a readable PDF"):
        M.load_pdf(bad)
    txt = tmp_path / "fake.pdf"
    txt.write_text("not a pdf")
    with pytest.raises(MediaError, match="not a valid PDF"):
        M.load_pdf(txt)


# ----------------------------------------------------------------------------- one turn

def test_turn_counts_and_no_mixing(tmp_path):
    imgs = [photo(tmp_path, f"i{i}.png", size=(30, 30)) for i in range(11)]
    v1, v2 = write_video(tmp_path / "a.mp4", 3), write_video(tmp_path / "b.mp4", 3)
    with pytest.raises(MediaError, match="You attached 11 images; at most 10 images per message"):
        M.prepare_turn_media(imgs)
    with pytest.raises(MediaError, match="You attached 2 videos; only 1 video per message"):
        M.prepare_turn_media([v1, v2])
    with pytest.raises(MediaError, match="You attached 1 image and 1 video; media types cannot be mixed"):
        M.prepare_turn_media([imgs[0], v1])
    with pytest.raises(MediaError, match="cannot be mixed"):
        M.prepare_turn_media([PDF, imgs[0]])
    with pytest.raises(MediaError, match="You attached 2 PDFs; only 1 PDF"):
        M.prepare_turn_media([PDF, PDF])
    assert M.prepare_turn_media(None).kind == "none"
    assert M.prepare_turn_media([]).kind == "none"
    ten = M.prepare_turn_media(imgs[:10])
    assert ten.kind == "image" and len(ten.images) == 10 and ten.sources == [str(p) for p in imgs[:10]]


def test_turn_media_sample_data_through_processor(processor):
    photos = M.prepare_turn_media(PHOTOS)
    assert photos.kind == "image" and len(photos.images) == 3
    out = run_images(processor, photos.images)
    assert out["image_grid_thw"].shape == (3, 3)
    assert n_visual(processor, out) == M.estimate_visual_tokens(photos, processor) > 3

    pdf = M.prepare_turn_media([PDF])
    assert pdf.kind == "pdf" and len(pdf.images) == 2 and pdf.video is None
    out = run_images(processor, pdf.images)
    assert n_visual(processor, out) == M.estimate_visual_tokens(pdf, processor)

    vid = M.prepare_turn_media([CLIP], fps=4, max_frames=10)
    assert vid.kind == "video" and vid.video.frames.shape[0] == 10 and not vid.images
    out = run_video(processor, vid.video)
    assert n_visual(processor, out) == M.estimate_visual_tokens(vid, processor)
    assert M.estimate_visual_tokens(M.TurnMedia(), processor) == 0


def test_sample_data_is_small_and_licensed():
    # workshop/generated/ is the SFT recipe's data, written on first use and git-ignored
    files = [p for p in SAMPLE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and "generated" not in p.relative_to(SAMPLE).parts]
    # 4.5 MB: the three RL recipes ship their prompts and held-out scenes (rl-shapes, rl-boxes,
    # rl-mixed: ~1 MB each of 112-px PNGs and JSONL; trace and scene fields left out)
    assert sum(p.stat().st_size for p in files) < 4_500_000
    assert 3 <= len(PHOTOS) <= 4 and all(max(Image.open(p).size) <= 640 for p in PHOTOS)
    assert CLIP.stat().st_size < 500_000
    licence = (SAMPLE / "LICENSE.md").read_text(encoding="utf-8")
    for p in PHOTOS + [CLIP, PDF]:
        assert p.name in licence
    with av.open(str(CLIP)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name in ("h264", "mpeg4") and 3.0 <= float(s.duration * s.time_base) <= 4.0


def test_pdf_rendering_from_many_threads_is_serialised():
    """PDFium is not thread-safe; gradio renders from worker threads (a crash was seen)."""
    import threading

    from studio.engine.infer import media

    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(len(media.load_pdf(PDF)))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [2] * 12
