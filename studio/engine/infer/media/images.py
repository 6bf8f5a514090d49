"""Images: decoded with Pillow, EXIF-rotated, flattened to RGB, small ones upscaled, huge ones downscaled.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError
import numpy as np

from studio.engine.infer.media.limits import (IMAGE_BYTES_PER_PIXEL, MAX_ASPECT, MAX_DECODE_BYTES,
                                              MAX_IMAGE_PIXELS, MIN_SIDE, _PIL_DECODE_ERRORS, _check_file,
                                              _name, kind_of)
from studio.errors import MediaError

if TYPE_CHECKING:  # pragma: no cover
    import os


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

#: Bytes per pixel Pillow holds for a decoded frame of each mode *plus* the full-size
#: conversion :func:`_downscale_to` makes before it can shrink it ("1" → "L",
#: palette → RGB/RGBA, 16-bit → RGB, CMYK/YCbCr/LAB → RGB). Pillow stores every
#: multi-band mode, and 32-bit "I"/"F", at 4 bytes per pixel. Other modes: 8.
_DECODE_BYTES_PER_PIXEL = {
    "1": 2, "L": 1, "P": 5, "PA": 8, "LA": 4, "La": 4, "I": 4, "F": 4,
    "RGB": 4, "RGBA": 4, "RGBa": 4, "RGBX": 4,
    "I;16": 6, "I;16L": 6, "I;16B": 6, "I;16N": 6,
}


def decode_cost(mode: str, width: int, height: int) -> int:
    """Bytes decoding a ``width × height`` image of Pillow ``mode`` takes before it is
    downscaled: the decoded frame plus the full-size conversion the downscale needs.

    >>> decode_cost("RGBA", 12000, 12000) // 2**20   # the 144 MP RGBA PNG probe
    549
    >>> decode_cost("L", 1000, 1000)
    1000000
    """
    return int(width) * int(height) * _DECODE_BYTES_PER_PIXEL.get(mode, 8)


def _flatten_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of ``img``; palette, alpha and 16-bit/float modes flattened on white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)  # already downscaled; float32 halves float64's peak
        hi = arr.max() if arr.size else 0
        if hi > 255:
            arr *= 255.0 / 65535.0
        np.clip(arr, 0, 255, out=arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
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


def normalize_image(img: Image.Image, name: str = "image", orientation: int | None = None,
                    max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Apply the image rules to a decoded PIL image (used for photos and PDF pages).

    Order: aspect check (≤ :data:`MAX_ASPECT`) → downscale above ``max_pixels``
    (default :data:`MAX_IMAGE_PIXELS`) → EXIF orientation → RGB (palette/alpha on
    white) → upscale a short side below :data:`MIN_SIDE`.

    Args:
        img: a loaded PIL image (any mode).
        name: used in error messages.
        orientation: EXIF orientation 1–8; default: read from ``img``.
        max_pixels: pixel cap of the result (a turn with several images gives each its
            share of :data:`~studio.engine.infer.media.limits.MAX_TURN_BYTES`).

    Returns:
        A new RGB ``PIL.Image.Image`` with both sides ≥ 28 and ≤ ``max_pixels`` pixels
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
    img = _downscale_to(img, max_pixels)
    if orientation in _ORIENT_FIX:
        img = img.transpose(_ORIENT_FIX[orientation])
    img = _flatten_rgb(img)
    _check_aspect(*img.size, name)  # rounding in the downscale could nudge it over
    return _upscale_small(img)


def load_image(path_or_pil: str | os.PathLike | Image.Image, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode an image file (or take a PIL image) and apply the image rules.

    GIF/animated WebP/APNG/multi-page TIFF: the first frame. Palette and alpha are flattened
    on white; EXIF orientation is applied; a short side < :data:`MIN_SIDE` is upscaled (1×1
    and 16×16 work); more than ``max_pixels`` pixels is downscaled first.

    Memory: the header's size and mode are read first (``Image.open`` is lazy) and a file
    whose decoding would take more than :data:`MAX_DECODE_BYTES` (:func:`decode_cost`) is
    refused before a pixel is decoded; a large JPEG is decoded at 1/2, 1/4 or 1/8 size
    (libjpeg's DCT scaling) so that it fits.

    Args:
        path_or_pil: file path, or an already decoded ``PIL.Image.Image``.
        max_pixels: pixel cap of the result (default :data:`MAX_IMAGE_PIXELS`).

    Returns:
        ``PIL.Image.Image`` in mode ``"RGB"``, fully loaded (the file is closed).

    Raises:
        MediaError: missing/empty file; not an image; truncated or corrupt data; too large
            to decode within :data:`MAX_DECODE_BYTES`; aspect ratio above :data:`MAX_ASPECT`.
    """
    if isinstance(path_or_pil, Image.Image):
        img = path_or_pil
        name = getattr(img, "filename", "") or "image"
        try:
            img.load()
        except _PIL_DECODE_ERRORS as e:
            raise MediaError(f"The image could not be decoded ({e}). Choose another image.") from None
        return normalize_image(img, _name(name), max_pixels=max_pixels)
    p = _check_file(path_or_pil)
    name = _name(p)
    if kind_of(p) != "image":
        raise MediaError(f"{name!r} is not an image. Send it as a video or PDF, or choose an image file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                _check_aspect(w, h, name)  # before decoding: a banner is refused either way
                im.seek(0)  # GIF / animated WebP / APNG / multi-page TIFF: first frame
                if im.format == "JPEG" and (w * h > max_pixels or decode_cost(im.mode, w, h) > MAX_DECODE_BYTES):
                    # JPEG DCT scaling: decode at 1/2, 1/4 or 1/8 size directly. draft() picks
                    # the smallest scale whose size is still ≥ the request; asking for a
                    # quarter of the budget keeps the result within it.
                    want = min(max_pixels, MAX_DECODE_BYTES // IMAGE_BYTES_PER_PIXEL // 4)
                    scale = math.sqrt(want / (w * h))
                    im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
                _check_decode_budget(im, name)
                im.load()
                orientation = _orientation(im)
                # Downscale straight from the decoded frame (no full-size copy of a huge image).
                img = _downscale_to(im, max_pixels)
                if img is im:
                    img = im.copy()
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise MediaError(
            f"{name!r} is too large to decode safely (over {MAX_DECODE_BYTES // 2**20} MB decoded). "
            f"Downscale it first, or save it as JPEG."
        ) from None
    except (UnidentifiedImageError, *_PIL_DECODE_ERRORS) as e:
        detail = str(e).strip().rstrip(".") or type(e).__name__
        raise MediaError(
            f"{name!r} could not be decoded: the image data is truncated or corrupt ({detail}). "
            f"Re-export or re-download it."
        ) from None
    return normalize_image(img, name, orientation, max_pixels=max_pixels)


def _check_decode_budget(im: Image.Image, name: str) -> None:
    """Refuse ``im`` (opened, not decoded) if decoding it would exceed :data:`MAX_DECODE_BYTES`."""
    w, h = im.size
    cost = decode_cost(im.mode, w, h)
    if cost > MAX_DECODE_BYTES:
        raise MediaError(
            f"{name!r} is {w}×{h} pixels ({w * h / 1e6:.0f} MP, mode {im.mode}); decoding it would take "
            f"{cost / 2**20:.0f} MB, and images over {MAX_DECODE_BYTES // 2**20} MB decoded are refused to "
            f"protect memory. Downscale it (e.g. to 4096 px on the long side) or save it as JPEG."
        )
