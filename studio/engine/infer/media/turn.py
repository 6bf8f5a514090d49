"""One user turn's media: the counting rule, :func:`prepare_turn_media`, and the visual-token estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Sequence

from studio.engine.infer.media.images import load_image
from studio.engine.infer.media.limits import (DEFAULT_FPS, DEFAULT_MAX_FRAMES, IMAGE_BYTES_PER_PIXEL,
                                              MAX_IMAGE_PIXELS, MAX_IMAGES, MAX_PDFS, MAX_PDF_PAGES,
                                              MAX_TURN_BYTES, MAX_VIDEOS, kind_of)
from studio.engine.infer.media.memory import decode_slot
from studio.engine.infer.media.pdf import load_pdf
from studio.engine.infer.media.video import VideoClip, load_video
from studio.errors import InputError, MediaError

if TYPE_CHECKING:  # pragma: no cover
    import os


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

    @property
    def nbytes(self) -> int:
        """Decoded bytes this turn holds (images as Pillow stores them, 4 bytes per pixel;
        the video's frame array)."""
        n = sum(im.width * im.height * IMAGE_BYTES_PER_PIXEL for im in self.images)
        return n + (int(self.video.frames.nbytes) if self.video is not None else 0)

    def paths_only(self) -> "TurnMedia":
        """The same turn without its decoded pixels (kind and sources only): what a
        session may keep between requests; decode again with :func:`prepare_turn_media`."""
        return TurnMedia(kind=self.kind, sources=list(self.sources))


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
                       max_frames: int = DEFAULT_MAX_FRAMES, budget_bytes: int = MAX_TURN_BYTES) -> TurnMedia:
    """Classify, check and decode the files of one user turn, within a memory budget.

    All files are classified first (cheap), the count and no-mixing rules are enforced
    (:func:`check_turn_kinds`), and only then is anything decoded — inside the process's
    shared decoding slot (:func:`~studio.engine.infer.media.memory.decode_slot`), so
    concurrent requests decode one at a time and freed memory goes back to the OS.

    Memory: the decoded result holds at most ``budget_bytes``: each of ``n`` images is
    downscaled to ``budget / 4 / n`` pixels (≤ :data:`MAX_IMAGE_PIXELS`), a PDF's pages
    share it the same way, and a video's frames are decoded at the resolution where
    T × H × W × 3 fits. Files whose decoding alone would exceed
    :data:`~studio.engine.infer.media.limits.MAX_DECODE_BYTES` are refused from their header.

    Args:
        paths: file paths (None or empty → ``TurnMedia(kind="none")``).
        fps, max_frames: video sampling (see :func:`load_video`).
        budget_bytes: decoded bytes the turn may hold (default :data:`MAX_TURN_BYTES`).

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
    budget = max(1, int(budget_bytes))
    with decode_slot():
        if kind == "image":
            share = max(1, min(MAX_IMAGE_PIXELS, budget // IMAGE_BYTES_PER_PIXEL // len(paths)))
            return TurnMedia(kind="image", images=[load_image(p, max_pixels=share) for p in paths], sources=sources)
        if kind == "video":
            return TurnMedia(kind="video", sources=sources,
                             video=load_video(paths[0], fps=fps, max_frames=max_frames, budget_bytes=budget))
        return TurnMedia(kind="pdf", images=load_pdf(paths[0], budget_bytes=budget), sources=sources)


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
