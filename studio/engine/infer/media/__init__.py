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

Memory: every decode has a budget checked *before* pixels are decoded (image headers,
PDF page sizes, video frame sizes; :mod:`.limits`), a turn's media together hold at most
``MAX_TURN_BYTES``, and decoding runs in one process-wide slot that gives freed memory
back afterwards (:mod:`.memory`).

Modules: :mod:`.limits` (the limits and sniffing), :mod:`.images`, :mod:`.video`, :mod:`.pdf`,
:mod:`.memory` (the decoding slot) and :mod:`.turn` (one user turn's media and its
visual-token estimate). Everything is
importable from ``studio.engine.infer.media`` as before.
"""

from __future__ import annotations

# The package's API, as when media was one module:
from studio.engine.infer.media.limits import (  # noqa: F401
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    IMAGE_EXTS,
    Kind,
    MAX_ASPECT,
    MAX_DECODE_BYTES,
    MAX_DECODE_PIXELS,
    MAX_HISTORY_BYTES,
    MAX_TURN_BYTES,
    MAX_VIDEO_SOURCE_PIXELS,
    MAX_FPS,
    MAX_IMAGES,
    MAX_IMAGE_PIXELS,
    MAX_MAX_FRAMES,
    MAX_PDFS,
    MAX_PDF_PAGES,
    MAX_VIDEOS,
    MAX_VIDEO_FRAME_PIXELS,
    MIN_SIDE,
    PDF_DPI,
    PDF_EXTS,
    TEMPORAL_PATCH,
    VIDEO_EXTS,
    VIDEO_PROCESSOR_KWARGS,
    kind_of,
)
from studio.engine.infer.media.images import (  # noqa: F401
    decode_cost,
    load_image,
    normalize_image,
)
from studio.engine.infer.media.video import (  # noqa: F401
    VideoClip,
    frame_pixel_cap,
    load_video,
    sample_indices,
    video_processor_kwargs,
)
from studio.engine.infer.media.pdf import (  # noqa: F401
    load_pdf,
)
from studio.engine.infer.media.memory import (  # noqa: F401
    decode_slot,
    trim,
)
from studio.engine.infer.media.turn import (  # noqa: F401
    TurnMedia,
    check_turn_kinds,
    estimate_visual_tokens,
    image_tokens,
    prepare_turn_media,
    video_tokens,
)

__all__ = [
    "IMAGE_EXTS", "VIDEO_EXTS", "PDF_EXTS", "MAX_IMAGES", "MAX_VIDEOS", "MAX_PDFS",
    "MAX_PDF_PAGES", "PDF_DPI", "MIN_SIDE", "MAX_ASPECT", "MAX_IMAGE_PIXELS",
    "MAX_DECODE_PIXELS", "MAX_DECODE_BYTES", "MAX_TURN_BYTES", "MAX_HISTORY_BYTES", "MAX_VIDEO_SOURCE_PIXELS",
    "decode_cost", "frame_pixel_cap", "decode_slot", "trim", "DEFAULT_FPS", "MAX_FPS", "DEFAULT_MAX_FRAMES", "MAX_MAX_FRAMES",
    "TEMPORAL_PATCH", "MAX_VIDEO_FRAME_PIXELS", "VIDEO_PROCESSOR_KWARGS",
    "kind_of", "load_image", "normalize_image", "VideoClip", "load_video", "sample_indices",
    "video_processor_kwargs", "load_pdf", "TurnMedia", "check_turn_kinds",
    "prepare_turn_media", "image_tokens", "video_tokens", "estimate_visual_tokens",
]
