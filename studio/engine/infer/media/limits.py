"""Media limits (one named constant per rule, quoted by the UI, the CLI and the docs) and file sniffing:
:func:`kind_of`.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image, UnidentifiedImageError

from studio.errors import MediaError

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
#: Memory one image file may take while it is decoded (bytes): Pillow's buffer for the
#: decoded frame plus the full-size conversion the downscale needs (see
#: :func:`~studio.engine.infer.media.images.decode_cost`). Checked from the header,
#: *before* decoding; a JPEG is first decoded at 1/2, 1/4 or 1/8 size when that is
#: enough. 96 MiB: a 24 MP RGB photo as PNG, any JPEG up to ~400 MP.
MAX_DECODE_BYTES = 96 * 2**20
#: Kept for callers that quote a pixel count: the largest image (in pixels, grey
#: 8-bit, the cheapest mode) that passes :data:`MAX_DECODE_BYTES`.
MAX_DECODE_PIXELS = MAX_DECODE_BYTES
#: Decoded bytes one user turn's media may hold at once: images and PDF pages as Pillow
#: keeps them (4 bytes per pixel), video frames as ``uint8`` RGB (3 bytes per pixel,
#: T × H × W × 3). Each image of a turn is downscaled to its share; a video's frames are
#: decoded at the resolution that fits. 128 MiB ≈ 44.7 M video pixels, close to the real
#: GLM-4.1V video budget (47.04 M pixels over all frames), so the model loses little.
MAX_TURN_BYTES = 128 * 2**20
#: Decoded bytes a whole conversation's media may hold while one request runs (Chat
#: sends every earlier turn's media again). With more media turns than fit, each turn
#: gets an equal share (older images are sent smaller).
MAX_HISTORY_BYTES = 192 * 2**20
#: Bytes per pixel of a decoded image (Pillow stores RGB as 4 bytes) and a video frame.
IMAGE_BYTES_PER_PIXEL = 4
VIDEO_BYTES_PER_PIXEL = 3

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
#: kept); :data:`MAX_TURN_BYTES` usually asks for smaller frames still.
MAX_VIDEO_FRAME_PIXELS = 1920 * 1080
#: Videos whose coded frames are larger than this (width × height, from the header) are
#: refused before any frame is decoded: the decoder allocates whole frames at the coded
#: size (a 16K × 16K stream is ~400 MB per frame). 4096 × 2304 admits 4K UHD and DCI 4K.
MAX_VIDEO_SOURCE_PIXELS = 4096 * 2304
#: Decoder threads per video: FFmpeg's frame threading holds one frame per thread.
VIDEO_DECODE_THREADS = 2
#: Seconds one video may take to decode (probe and sampled frames together): a small file
#: can hold hours of tiny frames, and decoding holds the server's one decoding slot.
VIDEO_DECODE_TIMEOUT_S = 60.0

#: Extra keyword arguments for the processor when passing a :class:`VideoClip`'s frames:
#: they are already sampled, so the video processor must not sample them again.
VIDEO_PROCESSOR_KWARGS: dict[str, Any] = {"do_sample_frames": False}

# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that, at ``Image.open``.
# Our own header check (:func:`~studio.engine.infer.media.images.decode_cost`) is the
# real gate and names the limit; Pillow's guard stays as a backstop set high enough that
# a huge JPEG can still be opened and decoded at 1/8 size (draft mode).
Image.MAX_IMAGE_PIXELS = 4 * MAX_DECODE_BYTES

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
        # the name only: a server's folders are nobody's business (the user knows where it was)
        raise MediaError(f"File {_name(p)!r} does not exist. Check the path or upload it again.")
    if not p.is_file():
        raise MediaError(f"{_name(p)!r} is not a file. Choose an image, a video or a PDF file.")
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
