"""Images, video and PDF pages, checked and decoded before the processor sees them.

Why this module exists: GLM-4.1V's processor fails in unhelpful ways on ordinary user
files (a 1×1 PNG is taken for a channels-first array, a 300:1 banner raises deep inside
``smart_resize``, a 1-frame video breaks the temporal patch of 2, and transformers 5.x
decodes video paths only with torchcodec, which needs system FFmpeg). Here every file is
sniffed, decoded with a well-kept library (Pillow, PyAV — its wheel carries FFmpeg —,
pypdfium2), normalised to what the processor accepts, and every user-fixable problem
becomes one :class:`~studio.errors.MediaError` sentence that says what to change.

Per turn a user sends at most 10 images, or 1 video, or 1 PDF (≤ 20 pages), never a mix —
the same rule as the official GLM-4.1V demo (``inference/trans_infer_gradio.py``).

Video frames are handed to the processor *already sampled*, together with metadata in the
shape of :class:`transformers.video_utils.VideoMetadata` (source ``fps``,
``total_num_frames``, ``duration`` and the source ``frames_indices`` of the kept frames),
so that :class:`~transformers.Glm4vProcessor` writes the right integer second after each
frame pair. Pass them with ``do_sample_frames=False`` (see :data:`VIDEO_PROCESSOR_KWARGS`
and :func:`video_processor_kwargs`), otherwise the video processor would sample the
already-sampled frames a second time.
"""

from __future__ import annotations

import math
import re
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from studio.errors import InputError, MediaError

if TYPE_CHECKING:  # pragma: no cover
    import os

# --------------------------------------------------------------------------------------
# Limits. Each is a named constant so the UI, the CLI and the docs quote the same number.
# --------------------------------------------------------------------------------------

#: Image suffixes the chat accepts (Pillow decodes them all).
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tiff", ".tif", ".gif")
#: Video suffixes the chat accepts (PyAV's bundled FFmpeg demuxes them all).
VIDEO_EXTS = (".mp4", ".webm", ".mov", ".mkv", ".avi")
#: PDF suffix; pages are rendered to images with pypdfium2.
PDF_EXTS = (".pdf",)

#: At most this many images in one user turn (official GLM-4.1V demo rule).
MAX_IMAGES = 10
#: At most one video per turn, and never together with images or a PDF.
MAX_VIDEOS = 1
#: At most one PDF per turn; its pages become images.
MAX_PDFS = 1
#: A PDF may have at most this many pages (each page is one image for the model).
MAX_PDF_PAGES = 20
#: Default PDF render resolution in dots per inch (an A4 page → 794×1123 pixels).
PDF_DPI = 96

#: Images with a side shorter than this are upscaled (aspect kept): 28 = patch 14 ×
#: spatial merge 2, the smallest cell the GLM-4.1V vision tower turns into one token.
MIN_SIDE = 28
#: Longest side / shortest side above this is refused: GLM-4.1V's ``smart_resize``
#: raises "absolute aspect ratio must be smaller than 200".
MAX_ASPECT = 200
#: Images with more pixels than this are downscaled (aspect kept) right after decoding,
#: before any other step; the processor's own budget is smaller still (the real model:
#: 9.6 MP), so nothing is lost that the model would have seen.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Files with more pixels than this are refused *before* decoding (decompression-bomb
#: guard; a 150 MP RGB image is ~450 MB decoded). Pillow's own guard is set to match.
MAX_DECODE_PIXELS = 150_000_000

#: Default video sampling rate in frames per second (GLM-4.1V's video processor uses 2).
DEFAULT_FPS = 2.0
#: Highest sampling rate a user may ask for.
MAX_FPS = 30.0
#: Default cap on sampled video frames; must be even (temporal patch 2).
DEFAULT_MAX_FRAMES = 32
#: Largest ``max_frames`` a user may ask for (the real model samples ≤ 300 s at 2 fps).
MAX_MAX_FRAMES = 600
#: GLM-4.1V's temporal patch: frames are consumed in pairs, so a clip has an even count ≥ 2.
TEMPORAL_PATCH = 2
#: Decoded video frames above this many pixels are downscaled while decoding (aspect
#: kept): 32 frames of 4K would be ~800 MB, and the processor shrinks them anyway.
MAX_VIDEO_FRAME_PIXELS = 1920 * 1080

#: Extra keyword arguments for the processor when passing a :class:`VideoClip`'s frames:
#: they are already sampled, so the video processor must not sample them again.
VIDEO_PROCESSOR_KWARGS: dict[str, Any] = {"do_sample_frames": False}

# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that. We check the header
# size ourselves (clear message) and keep Pillow's guard as a backstop at our cap, so a
# 144 MP photo decodes and a 200 MP file is refused with a MediaError.
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

Kind = Literal["image", "video", "pdf"]

_KIND_EXTS: dict[str, tuple[str, ...]] = {"image": IMAGE_EXTS, "video": VIDEO_EXTS, "pdf": PDF_EXTS}
_PIL_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError,
    Image.DecompressionBombError,
)


# --------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------

def _name(path: Any) -> str:
    """File name for messages (uploads keep their original name as the last part)."""
    return Path(str(path)).name or str(path)


def _check_file(path: Any) -> Path:
    """Return ``Path(path)`` if it is a readable, non-empty file; else MediaError."""
    if path is None or str(path) == "":
        raise MediaError("No file was given. Choose an image, a video or a PDF.")
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise MediaError(f"File {str(p)!r} does not exist. Check the path or upload it again.")
    if not p.is_file():
        raise MediaError(f"{str(p)!r} is not a file. Choose an image, a video or a PDF file.")
    if p.stat().st_size == 0:
        raise MediaError(f"{_name(p)!r} is empty (0 bytes). Upload the file again or choose another one.")
    return p


def _sniff(head: bytes) -> Kind | None:
    """Kind from the first bytes of a file (magic numbers), or None if unrecognised."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return "image"
    if head[:6] in (b"GIF87a", b"GIF89a") or head[:2] == b"BM":
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska / WebM
        return "video"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "video"  # ISO BMFF / QuickTime (mp4, mov); HEIC is ftyp too, see below
    if b"%PDF-" in head[:1024]:
        return "pdf"
    return None


def _supported_list() -> str:
    return "images (" + ", ".join(e[1:] for e in IMAGE_EXTS) + "), videos (" + ", ".join(
        e[1:] for e in VIDEO_EXTS) + ") or a PDF"


def kind_of(path: str | os.PathLike) -> Kind:
    """Classify a file as ``"image"``, ``"video"`` or ``"pdf"`` by suffix *and* content.

    The suffix says what the user meant; the first bytes (magic numbers) say what the file
    is. A recognised content wins over a wrong suffix (a PNG saved as ``.jpg`` is an image).
    Images are additionally opened with Pillow (header only) so formats without a fixed
    magic still pass.

    Raises:
        MediaError: missing or empty file; unsupported suffix; content that is not a
            decodable image / video / PDF (e.g. a text file named ``photo.jpg``).
    """
    p = _check_file(path)
    with open(p, "rb") as fh:
        head = fh.read(2048)
    ext = p.suffix.lower()
    by_ext = next((k for k, exts in _KIND_EXTS.items() if ext in exts), None)
    sniffed = _sniff(head)
    if sniffed == "video" and head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        raise MediaError(f"{_name(p)!r} is a HEIC/AVIF image, which is not supported. Convert it to JPEG or PNG.")
    if by_ext is None and sniffed is None:
        raise MediaError(
            f"{_name(p)!r} is not a supported file type ({ext or 'no suffix'}). "
            f"Send {_supported_list()}."
        )
    if sniffed is not None:
        return sniffed
    # Suffix known, magic unknown: give each decoder one cheap chance before refusing.
    if by_ext == "image":
        try:
            with Image.open(p) as im:
                im.size  # header parsed
            return "image"
        except (UnidentifiedImageError, *_PIL_DECODE_ERRORS):
            raise MediaError(
                f"{_name(p)!r} is not a decodable image: its content is not PNG, JPEG, WebP, "
                f"GIF, BMP or TIFF data. Check the file, or convert it to PNG or JPEG."
            ) from None
    if by_ext == "video":
        import av

        try:
            with av.open(str(p)) as c:
                c.streams  # demuxer accepted it
            return "video"
        except (av.error.FFmpegError, OSError, ValueError):
            raise MediaError(
                f"{_name(p)!r} is not a decodable video (the container is corrupt or not "
                f"{', '.join(e[1:] for e in VIDEO_EXTS)}). Re-export it, e.g. as H.264 MP4."
            ) from None
    raise MediaError(f"{_name(p)!r} is not a valid PDF (no %PDF header). Re-export or re-download it.")


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

def _flatten_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of ``img``; palette, alpha and 16-bit/float modes flattened on white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _downscale_to(img: Image.Image, max_pixels: int) -> Image.Image:
    """Shrink ``img`` (aspect kept) so that width × height ≤ ``max_pixels``.

    Integer box-reduce first (``Image.reduce``, cheap on 100+ MP), then one antialiased
    resample to the exact size. Returns ``img`` itself when it is small enough.
    """
    w, h = img.size
    if w * h <= max_pixels:
        return img
    scale = math.sqrt(max_pixels / (w * h))
    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "RGB", "RGBA", "LA", "I", "F"):
        img = img.convert("RGBA" if img.mode in ("P", "PA") and "transparency" in img.info else "RGB")
    factor = int(1 / scale)
    if factor >= 2:
        img = img.reduce(factor)
    return img.resize((nw, nh), Image.Resampling.BICUBIC)


def _check_aspect(w: int, h: int, name: str) -> None:
    ratio = max(w, h) / max(1, min(w, h))
    if ratio > MAX_ASPECT:
        raise MediaError(
            f"{name!r} is {w}×{h} pixels, an aspect ratio of {ratio:.0f}:1; the model accepts "
            f"at most {MAX_ASPECT}:1. Crop it into pieces or pad it to a less extreme shape."
        )


def _upscale_small(img: Image.Image) -> Image.Image:
    """Upscale so that the short side is ≥ MIN_SIDE (aspect kept, long side rounded)."""
    w, h = img.size
    if min(w, h) >= MIN_SIDE:
        return img
    scale = MIN_SIDE / min(w, h)
    nw = MIN_SIDE if w <= h else max(MIN_SIDE, round(w * scale))
    nh = MIN_SIDE if h < w else max(MIN_SIDE, round(h * scale))
    return img.resize((nw, nh), Image.Resampling.BICUBIC)


_EXIF_ORIENTATION = 0x0112
#: EXIF orientation → the transpose that makes the image upright (as ImageOps.exif_transpose).
_ORIENT_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def _orientation(img: Image.Image) -> int:
    """EXIF orientation tag (1–8) of ``img``; 1 when absent or unreadable."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except _PIL_DECODE_ERRORS + (TypeError,):  # a broken EXIF block is not worth refusing a photo for
        return 1


def normalize_image(img: Image.Image, name: str = "image", orientation: int | None = None) -> Image.Image:
    """Apply the image rules to a decoded PIL image (used for photos and PDF pages).

    Order: aspect check (≤ :data:`MAX_ASPECT`) → downscale above
    :data:`MAX_IMAGE_PIXELS` → EXIF orientation → RGB (palette/alpha on white) → upscale
    a short side below :data:`MIN_SIDE`.

    Args:
        img: a loaded PIL image (any mode).
        name: used in error messages.
        orientation: EXIF orientation 1–8; default: read from ``img``.

    Returns:
        A new RGB ``PIL.Image.Image`` with both sides ≥ 28 and ≤ MAX_IMAGE_PIXELS pixels
        (the upscale of a tiny image is at most 28 × 5600).

    Raises:
        MediaError: an empty image or an aspect ratio above :data:`MAX_ASPECT`.
    """
    w, h = img.size
    if w < 1 or h < 1:
        raise MediaError(f"{name!r} has no pixels ({w}×{h}). Choose another image.")
    _check_aspect(w, h, name)
    if orientation is None:
        orientation = _orientation(img)
    img = _downscale_to(img, MAX_IMAGE_PIXELS)
    if orientation in _ORIENT_FIX:
        img = img.transpose(_ORIENT_FIX[orientation])
    img = _flatten_rgb(img)
    _check_aspect(*img.size, name)  # rounding in the downscale could nudge it over
    return _upscale_small(img)


def load_image(path_or_pil: str | os.PathLike | Image.Image) -> Image.Image:
    """Decode an image file (or take a PIL image) and apply the image rules.

    GIF/animated WebP/multi-page TIFF: the first frame. Palette and alpha are flattened on
    white; EXIF orientation is applied; a short side < :data:`MIN_SIDE` is upscaled (1×1
    and 16×16 work); more than :data:`MAX_IMAGE_PIXELS` pixels is downscaled first.

    Args:
        path_or_pil: file path, or an already decoded ``PIL.Image.Image``.

    Returns:
        ``PIL.Image.Image`` in mode ``"RGB"``, fully loaded (the file is closed).

    Raises:
        MediaError: missing/empty file; not an image; truncated or corrupt data; more than
            :data:`MAX_DECODE_PIXELS` pixels; aspect ratio above :data:`MAX_ASPECT`.
    """
    if isinstance(path_or_pil, Image.Image):
        img = path_or_pil
        name = getattr(img, "filename", "") or "image"
        try:
            img.load()
        except _PIL_DECODE_ERRORS as e:
            raise MediaError(f"The image could not be decoded ({e}). Choose another image.") from None
        return normalize_image(img, _name(name))
    p = _check_file(path_or_pil)
    name = _name(p)
    if kind_of(p) != "image":
        raise MediaError(f"{name!r} is not an image. Send it as a video or PDF, or choose an image file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_DECODE_PIXELS:
                    raise MediaError(
                        f"{name!r} is {w}×{h} pixels ({w * h / 1e6:.0f} MP); images over "
                        f"{MAX_DECODE_PIXELS / 1e6:.0f} MP are refused to protect memory. "
                        f"Downscale it first."
                    )
                im.seek(0)  # GIF / animated WebP / multi-page TIFF: first frame
                if im.format == "JPEG" and w * h > MAX_IMAGE_PIXELS:
                    # JPEG DCT scaling: decode at 1/2, 1/4 or 1/8 size directly.
                    scale = math.sqrt(MAX_IMAGE_PIXELS / (w * h))
                    im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
                im.load()
                orientation = _orientation(im)
                # Downscale straight from the decoded frame (no full-size copy of a huge image).
                img = _downscale_to(im, MAX_IMAGE_PIXELS)
                if img is im:
                    img = im.copy()
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise MediaError(
            f"{name!r} is too large to decode safely (over {MAX_DECODE_PIXELS / 1e6:.0f} MP). "
            f"Downscale it first."
        ) from None
    except (UnidentifiedImageError, *_PIL_DECODE_ERRORS) as e:
        detail = str(e).strip().rstrip(".") or type(e).__name__
        raise MediaError(
            f"{name!r} could not be decoded: the image data is truncated or corrupt ({detail}). "
            f"Re-export or re-download it."
        ) from None
    return normalize_image(img, name, orientation)


# --------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------

@dataclass
class VideoClip:
    """A decoded, sampled video ready for ``Glm4vProcessor(videos=[clip.frames], ...)``.

    Attributes:
        frames: ``np.ndarray`` uint8, shape ``(T, H, W, 3)`` RGB, ``T`` even and ≥ 2.
        metadata: dict with the fields of ``transformers.video_utils.VideoMetadata``:
            ``fps`` (source frame rate, frames/s), ``duration`` (s), ``total_num_frames``
            (source), ``frames_indices`` (source index of each of the T frames; repeated
            frames repeat their index), ``width``, ``height`` (of ``frames``),
            ``video_backend`` (``"pyav"``). ``frames_indices[i] / fps`` is frame i's time.
        path: the source file.
    """

    frames: np.ndarray
    metadata: dict
    path: str

    @property
    def timestamps(self) -> list[float]:
        """Time of each frame in seconds (``frames_indices / fps``)."""
        return [i / self.metadata["fps"] for i in self.metadata["frames_indices"]]


def video_processor_kwargs(clips: Sequence[VideoClip]) -> dict[str, Any]:
    """Keyword arguments for ``processor(..., videos=[c.frames for c in clips], **kw)``.

    Returns ``{"video_metadata": [...], "do_sample_frames": False}``: the frames are
    already sampled, and the metadata lets the processor print each frame pair's second.
    (With ``apply_chat_template`` put them in ``processor_kwargs``.)
    """
    return {"video_metadata": [dict(c.metadata) for c in clips], **VIDEO_PROCESSOR_KWARGS}


def sample_indices(total: int, src_fps: float, fps: float, max_frames: int,
                   duration: float | None = None) -> list[int]:
    """Source frame indices to keep: GLM-4.1V's rule, then a cap, then even length.

    Mirrors ``Glm4vVideoProcessor.sample_frames`` (transformers 5.24): ``n =
    max(floor(duration × fps), 1)`` frames at ``ceil(i × src_fps / fps)``; duplicates
    dropped. If more than ``max_frames`` remain, ``max_frames`` indices are spread evenly
    over the whole clip instead. Finally the last index is repeated until the count is even
    and ≥ :data:`TEMPORAL_PATCH` (a 1-frame clip gives ``[0, 0]``).

    Args:
        total: number of frames in the source (≥ 1).
        src_fps: source frame rate (> 0).
        fps: requested sampling rate (> 0).
        max_frames: cap on the result; rounded down to even, at least 2.
        duration: clip length in seconds; default ``total / src_fps``.
    """
    total = max(1, int(total))
    last = total - 1
    cap = max(TEMPORAL_PATCH, int(max_frames) - int(max_frames) % TEMPORAL_PATCH)
    dur = duration if duration and duration > 0 else total / src_fps
    n = max(int(math.floor(dur * fps)), 1)
    idx = [min(last, int(math.ceil(i * src_fps / fps))) for i in range(n)]
    uniq = list(dict.fromkeys(idx))
    if len(uniq) > cap:
        uniq = list(dict.fromkeys(int(round(x)) for x in np.linspace(0, last, cap)))
    while len(uniq) < TEMPORAL_PATCH or len(uniq) % TEMPORAL_PATCH:
        uniq.append(uniq[-1])
    return uniq


def _check_video_settings(fps: float, max_frames: int) -> None:
    if not (isinstance(fps, (int, float)) and 0 < fps <= MAX_FPS):
        raise InputError(f"Video fps must be between 0 and {MAX_FPS:g}, got {fps!r}.")
    if not (isinstance(max_frames, int) and TEMPORAL_PATCH <= max_frames <= MAX_MAX_FRAMES):
        raise InputError(
            f"Video max frames must be a whole number from {TEMPORAL_PATCH} to {MAX_MAX_FRAMES}, "
            f"got {max_frames!r}."
        )


def _frame_size(w: int, h: int) -> tuple[int, int]:
    """Output size for a decoded frame: ≤ MAX_VIDEO_FRAME_PIXELS, short side ≥ MIN_SIDE."""
    if w * h > MAX_VIDEO_FRAME_PIXELS:
        s = math.sqrt(MAX_VIDEO_FRAME_PIXELS / (w * h))
        w, h = max(1, int(w * s)), max(1, int(h * s))
    if min(w, h) < MIN_SIDE:
        s = MIN_SIDE / min(w, h)
        w, h = max(MIN_SIDE, round(w * s)), max(MIN_SIDE, round(h * s))
    return w, h


def _to_rgb(frame, size: tuple[int, int]) -> np.ndarray:
    """PyAV frame → uint8 (H, W, 3) RGB at ``size`` (w, h), display rotation applied."""
    arr = frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
    rot = getattr(frame, "rotation", 0) or 0
    k = int(round(rot / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


def _open_video(p: Path, name: str):
    """Open with PyAV and return (container, first video stream); MediaError otherwise."""
    import av

    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise _corrupt_video(name, e) from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no"
        container.close()
        raise MediaError(
            f"{name!r} has no video stream (it holds only {kinds} data). Choose a file with a "
            f"picture track."
        )
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _corrupt_video(name: str, e: BaseException) -> MediaError:
    detail = str(e).strip().rstrip(".") or type(e).__name__
    return MediaError(
        f"{name!r} could not be decoded as a video; it is corrupt or truncated ({detail}). "
        f"Re-export it, e.g. as H.264 MP4."
    )


def _decode_indices(p: Path, name: str, wanted: Sequence[int]) -> tuple[dict[int, np.ndarray], int, bool]:
    """Decode frames ``wanted`` (source indices) in one sequential pass.

    Returns ``(frames by index, frames seen, reached end of stream)``.
    """
    import av

    want = set(wanted)
    stop = max(wanted)
    got: dict[int, np.ndarray] = {}
    size = None
    seen = 0
    container, stream = _open_video(p, name)
    try:
        for i, frame in enumerate(container.decode(stream)):
            if size is None:
                _check_aspect(frame.width, frame.height, name)
                size = _frame_size(frame.width, frame.height)
            seen = i + 1
            if i in want:
                got[i] = _to_rgb(frame, size)
            if i >= stop:
                return got, seen, False
    except (av.error.FFmpegError, OSError, ValueError, struct.error) as e:
        if not got:
            raise _corrupt_video(name, e) from None
        # A damaged tail after good frames: keep what decoded, like a media player would.
    finally:
        container.close()
    return got, seen, True


def _probe(p: Path, name: str) -> tuple[float, float, int]:
    """(source fps, duration s, total frames) from the headers; counts frames if needed."""
    import av

    container, stream = _open_video(p, name)
    try:
        src_fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        total = int(stream.frames or 0)
        if total <= 0 and duration > 0 and src_fps > 0:
            total = max(1, int(round(duration * src_fps)))
        if total <= 0 or src_fps <= 0:
            # No usable header information: count the frames.
            try:
                total = sum(1 for _ in container.decode(stream))
            except (av.error.FFmpegError, OSError, ValueError, struct.error) as e:
                raise _corrupt_video(name, e) from None
            if src_fps <= 0:
                src_fps = total / duration if duration > 0 else 1.0
    finally:
        container.close()
    if total <= 0:
        raise MediaError(f"{name!r} has a video stream but no decodable frames. Choose another video.")
    if duration <= 0:
        duration = total / src_fps
    return src_fps, duration, total


def load_video(path: str | os.PathLike, fps: float = DEFAULT_FPS,
               max_frames: int = DEFAULT_MAX_FRAMES) -> VideoClip:
    """Decode a video with PyAV and sample frames the way GLM-4.1V does.

    Frames are taken at ``fps`` per second (:func:`sample_indices`), capped at
    ``max_frames`` spread over the whole clip, and padded by repeating the last frame to an
    even count ≥ 2 (so a 1-frame clip or a 0.5 s clip works). Frames larger than
    :data:`MAX_VIDEO_FRAME_PIXELS` are downscaled while decoding; tiny frames are upscaled
    to a short side of :data:`MIN_SIDE`; the stream's display rotation is applied.
    Decoding is one sequential pass that stops after the last wanted frame.

    Args:
        path: video file (mp4, webm, mov, mkv, avi; any codec FFmpeg decodes).
        fps: sampling rate in frames per second, 0 < fps ≤ :data:`MAX_FPS`.
        max_frames: cap on sampled frames, 2 … :data:`MAX_MAX_FRAMES` (rounded down to even).

    Returns:
        :class:`VideoClip` with frames uint8 ``(T, H, W, 3)`` and VideoMetadata-style dict.

    Raises:
        InputError: fps or max_frames out of range.
        MediaError: missing/empty/corrupt file, no video stream ("has no video stream"),
            no decodable frame, aspect ratio above :data:`MAX_ASPECT`.
    """
    _check_video_settings(fps, max_frames)
    p = _check_file(path)
    name = _name(p)
    kind = kind_of(p)
    if kind != "video":
        raise MediaError(f"{name!r} is not a video (it looks like a {kind}). Choose a video file.")

    src_fps, duration, total = _probe(p, name)
    wanted = sample_indices(total, src_fps, fps, max_frames, duration)
    got, seen, ended = _decode_indices(p, name, wanted)
    if seen == 0:
        raise MediaError(f"{name!r} has a video stream but no decodable frames. Choose another video.")
    if ended and (seen < total or any(i not in got for i in wanted)):
        # The header promised more frames than the stream holds: sample the real count.
        total = seen
        duration = min(duration, total / src_fps) if duration > 0 else total / src_fps
        wanted = sample_indices(total, src_fps, fps, max_frames, duration)
        if any(i not in got for i in wanted):
            got, _, _ = _decode_indices(p, name, wanted)
        # If a damaged stream still withholds a frame, use the nearest earlier decoded one.
        have = sorted(got)
        wanted = [i if i in got else max([j for j in have if j <= i] or have[:1]) for i in wanted]
    frames = np.stack([got[i] for i in wanted]).astype(np.uint8, copy=False)
    metadata = {
        "total_num_frames": int(total),
        "fps": float(src_fps),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "duration": float(duration),
        "video_backend": "pyav",
        "frames_indices": [int(i) for i in wanted],
    }
    return VideoClip(frames=frames, metadata=metadata, path=str(p))


# --------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------

def load_pdf(path: str | os.PathLike, max_pages: int = MAX_PDF_PAGES, dpi: int = PDF_DPI) -> list[Image.Image]:
    """Render each page of a PDF to an RGB image with pypdfium2.

    Pages are rendered at ``dpi`` (lowered per page if the page would exceed
    :data:`MAX_IMAGE_PIXELS`), then the image rules apply (aspect, min side).

    Args:
        path: the PDF file.
        max_pages: refuse PDFs with more pages than this (default :data:`MAX_PDF_PAGES`).
        dpi: render resolution in dots per inch (default :data:`PDF_DPI`).

    Returns:
        list of RGB ``PIL.Image.Image``, one per page, in page order.

    Raises:
        MediaError: missing/empty/corrupt file, password-protected PDF, PDF with no pages,
            more than ``max_pages`` pages.
    """
    with _PDFIUM_LOCK:
        return _load_pdf_unlocked(path, max_pages, dpi)


#: PDFium is not thread-safe (pypdfium2 docs): two gradio workers rendering at once
#: crashed the process in PDFium's font code. Every PDFium call goes through this lock.
_PDFIUM_LOCK = threading.Lock()


def _load_pdf_unlocked(path, max_pages: int, dpi: int) -> list[Image.Image]:
    import pypdfium2 as pdfium

    p = _check_file(path)
    name = _name(p)
    if kind_of(p) != "pdf":
        raise MediaError(f"{name!r} is not a PDF. Choose a PDF file.")
    if not (isinstance(dpi, int) and 24 <= dpi <= 600):
        raise InputError(f"PDF dpi must be a whole number from 24 to 600, got {dpi!r}.")
    try:
        doc = pdfium.PdfDocument(str(p))
    except pdfium.PdfiumError:
        # PDFium's error code is a process-wide "last error" that a failed load does not
        # always reset (a 0-page file reports the previous file's code), so look at the
        # bytes: encryption and an empty page tree are both visible there.
        data = p.read_bytes()
        if b"/Encrypt" in data:
            raise MediaError(
                f"{name!r} is password-protected (encrypted). Remove the password, e.g. print "
                f"it to a new PDF, and upload that."
            ) from None
        if re.search(rb"/Count\s*0\b", data) and not re.search(rb"/Count\s*[1-9]", data):
            raise MediaError(f"{name!r} has no pages. Choose a PDF with at least one page.") from None
        raise MediaError(
            f"{name!r} is not a readable PDF; it is corrupt or truncated. Re-export or "
            f"re-download it."
        ) from None
    try:
        n = len(doc)
        if n == 0:
            raise MediaError(f"{name!r} has no pages. Choose a PDF with at least one page.")
        if n > max_pages:
            raise MediaError(
                f"{name!r} has {n} pages; at most {max_pages} pages per PDF are allowed. "
                f"Split it, or extract the pages you need."
            )
        pages = []
        for i in range(n):
            page = doc[i]
            try:
                w_pt, h_pt = page.get_size()
                scale = dpi / 72.0
                px = (w_pt * scale) * (h_pt * scale)
                if px > MAX_IMAGE_PIXELS:
                    scale *= math.sqrt(MAX_IMAGE_PIXELS / px)
                bitmap = page.render(scale=scale)
                img = bitmap.to_pil()
                pages.append(normalize_image(img, f"{name} page {i + 1}"))
            except pdfium.PdfiumError as e:
                raise MediaError(
                    f"Page {i + 1} of {name!r} could not be rendered ({e}). Re-export the PDF."
                ) from None
            finally:
                page.close()
        return pages
    finally:
        doc.close()


# --------------------------------------------------------------------------------------
# One user turn
# --------------------------------------------------------------------------------------

@dataclass
class TurnMedia:
    """The media of one user turn, checked and decoded.

    Attributes:
        kind: ``"none"``, ``"image"`` (1–10 images), ``"video"`` (1 clip) or ``"pdf"``
            (its pages, ≤ 20, are in ``images``).
        images: RGB ``PIL.Image.Image`` list (photos or PDF pages); empty for video.
        video: the :class:`VideoClip`, or None.
        sources: the file paths as given, in order.
    """

    kind: Literal["none", "image", "video", "pdf"] = "none"
    images: list = field(default_factory=list)
    video: VideoClip | None = None
    sources: list = field(default_factory=list)

    @property
    def num_images(self) -> int:
        """Number of image placeholders this turn needs (photos or PDF pages)."""
        return len(self.images)


_RULE = (f"Send up to {MAX_IMAGES} images, or {MAX_VIDEOS} video, or {MAX_PDFS} PDF "
         f"(≤ {MAX_PDF_PAGES} pages) per message")


def check_turn_kinds(kinds: Sequence[str]) -> None:
    """Enforce the per-turn counts and the no-mixing rule on already classified files.

    Raises:
        MediaError: more than one kind, more than :data:`MAX_VIDEOS` videos, more than
            :data:`MAX_PDFS` PDFs or more than :data:`MAX_IMAGES` images.
    """
    counts = {k: kinds.count(k) for k in ("image", "video", "pdf")}
    present = [k for k in ("image", "video", "pdf") if counts[k]]
    if len(present) > 1:
        parts = [f"{counts[k]} {k}{'s' if counts[k] > 1 else ''}" for k in present]
        raise MediaError(
            f"You attached {' and '.join(parts)}; media types cannot be mixed in one message. "
            f"{_RULE}, and send the others in another message."
        )
    if counts["video"] > MAX_VIDEOS:
        raise MediaError(
            f"You attached {counts['video']} videos; only {MAX_VIDEOS} video per message is "
            f"allowed. Send them one at a time."
        )
    if counts["pdf"] > MAX_PDFS:
        raise MediaError(
            f"You attached {counts['pdf']} PDFs; only {MAX_PDFS} PDF per message is allowed. "
            f"Send them one at a time."
        )
    if counts["image"] > MAX_IMAGES:
        raise MediaError(
            f"You attached {counts['image']} images; at most {MAX_IMAGES} images per message "
            f"are allowed. Send the rest in another message."
        )


def prepare_turn_media(paths: Sequence[str | os.PathLike] | None, fps: float = DEFAULT_FPS,
                       max_frames: int = DEFAULT_MAX_FRAMES) -> TurnMedia:
    """Classify, check and decode the files of one user turn.

    All files are classified first (cheap), the count and no-mixing rules are enforced
    (:func:`check_turn_kinds`), and only then is anything decoded.

    Args:
        paths: file paths (None or empty → ``TurnMedia(kind="none")``).
        fps, max_frames: video sampling (see :func:`load_video`).

    Returns:
        :class:`TurnMedia`.

    Raises:
        MediaError: any file rule, or the per-turn limits (each with its own message).
        InputError: fps / max_frames out of range.
    """
    paths = [p for p in (paths or []) if p is not None and str(p) != ""]
    if not paths:
        return TurnMedia()
    kinds = [kind_of(p) for p in paths]
    check_turn_kinds(kinds)
    sources = [str(p) for p in paths]
    kind = kinds[0]
    if kind == "image":
        return TurnMedia(kind="image", images=[load_image(p) for p in paths], sources=sources)
    if kind == "video":
        return TurnMedia(kind="video", video=load_video(paths[0], fps=fps, max_frames=max_frames),
                         sources=sources)
    return TurnMedia(kind="pdf", images=load_pdf(paths[0]), sources=sources)


# --------------------------------------------------------------------------------------
# Visual-token estimate
# --------------------------------------------------------------------------------------

def _size_budget(sub_processor) -> tuple[int, int]:
    """(min_pixels, max_pixels) of a GLM image/video processor (its ``size`` dict)."""
    size = sub_processor.size
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    lo, hi = get("shortest_edge"), get("longest_edge")
    if lo is None or hi is None:
        raise InputError("The processor's size must have 'shortest_edge' and 'longest_edge' (a pixel budget).")
    return int(lo), int(hi)


def image_tokens(height: int, width: int, image_processor) -> int:
    """Visual tokens GLM-4.1V's image processor makes for one ``height × width`` image.

    Uses transformers' ``glm4v`` ``smart_resize`` with the processor's own patch size,
    merge size, temporal patch and pixel budget: tokens = (H'/patch)(W'/patch)/merge².
    """
    from transformers.models.glm4v.image_processing_glm4v import smart_resize

    patch, merge, tp = image_processor.patch_size, image_processor.merge_size, image_processor.temporal_patch_size
    lo, hi = _size_budget(image_processor)
    h, w = smart_resize(num_frames=tp, height=height, width=width, temporal_factor=tp,
                        factor=patch * merge, min_pixels=lo, max_pixels=hi)
    return (h // patch) * (w // patch) // (merge * merge)


def video_tokens(num_frames: int, height: int, width: int, video_processor) -> int:
    """Visual tokens GLM-4.1V's video processor makes for ``num_frames`` frames of H × W.

    ``smart_resize`` over the whole clip's pixel budget, then
    grid_t = ceil(T / temporal_patch) pairs × (H'/patch)(W'/patch)/merge² tokens each.
    """
    from transformers.models.glm4v.video_processing_glm4v import smart_resize

    patch, merge, tp = video_processor.patch_size, video_processor.merge_size, video_processor.temporal_patch_size
    lo, hi = _size_budget(video_processor)
    h, w = smart_resize(num_frames=num_frames, height=height, width=width, temporal_factor=tp,
                        factor=patch * merge, min_pixels=lo, max_pixels=hi)
    grid_t = -(-num_frames // tp)
    return grid_t * (h // patch) * (w // patch) // (merge * merge)


def estimate_visual_tokens(media: TurnMedia | None, processor) -> int:
    """Number of ``<|image|>`` tokens the processor will put in the prompt for ``media``.

    Computed from image sizes and the processor's settings only (no pixels are processed,
    the vision tower is not run), so the UI can show it before sending. Equals the count of
    ``image_token_id`` in ``processor(...)["input_ids"]`` for the same media.

    Args:
        media: a :class:`TurnMedia` (None or kind ``"none"`` → 0).
        processor: a ``Glm4vProcessor`` (its ``image_processor`` / ``video_processor``).
    """
    if media is None or media.kind == "none":
        return 0
    if media.kind == "video":
        t, h, w = media.video.frames.shape[:3]
        return video_tokens(t, h, w, processor.video_processor)
    return sum(image_tokens(im.height, im.width, processor.image_processor) for im in media.images)


__all__ = [
    "IMAGE_EXTS", "VIDEO_EXTS", "PDF_EXTS", "MAX_IMAGES", "MAX_VIDEOS", "MAX_PDFS",
    "MAX_PDF_PAGES", "PDF_DPI", "MIN_SIDE", "MAX_ASPECT", "MAX_IMAGE_PIXELS",
    "MAX_DECODE_PIXELS", "DEFAULT_FPS", "MAX_FPS", "DEFAULT_MAX_FRAMES", "MAX_MAX_FRAMES",
    "TEMPORAL_PATCH", "MAX_VIDEO_FRAME_PIXELS", "VIDEO_PROCESSOR_KWARGS",
    "kind_of", "load_image", "normalize_image", "VideoClip", "load_video", "sample_indices",
    "video_processor_kwargs", "load_pdf", "TurnMedia", "check_turn_kinds",
    "prepare_turn_media", "image_tokens", "video_tokens", "estimate_visual_tokens",
]
