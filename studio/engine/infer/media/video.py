"""Video: decoded with PyAV, frames sampled at the requested fps with the metadata the GLM processor expects.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from studio.engine.infer.media.images import _check_aspect
from studio.engine.infer.media.limits import (DEFAULT_FPS, DEFAULT_MAX_FRAMES, MAX_FPS, MAX_MAX_FRAMES,
                                              MAX_TURN_BYTES, MAX_VIDEO_FRAME_PIXELS, MAX_VIDEO_SOURCE_PIXELS,
                                              MIN_SIDE, TEMPORAL_PATCH, VIDEO_BYTES_PER_PIXEL,
                                              VIDEO_DECODE_THREADS, VIDEO_DECODE_TIMEOUT_S, VIDEO_PROCESSOR_KWARGS,
                                              _check_file, _name, kind_of)
from studio.errors import InputError, MediaError

if TYPE_CHECKING:  # pragma: no cover
    import os


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


def frame_pixel_cap(num_frames: int, budget_bytes: int = MAX_TURN_BYTES) -> int:
    """Pixels one decoded frame may have so that ``num_frames`` frames of ``uint8`` RGB fit
    ``budget_bytes`` (T × H × W × 3 ≤ budget), at most :data:`MAX_VIDEO_FRAME_PIXELS`.

    >>> frame_pixel_cap(64) < 1920 * 1080 // 2
    True
    """
    return max(MIN_SIDE * MIN_SIDE,
               min(MAX_VIDEO_FRAME_PIXELS, int(budget_bytes) // (VIDEO_BYTES_PER_PIXEL * max(1, int(num_frames)))))


def _frame_size(w: int, h: int, max_pixels: int = MAX_VIDEO_FRAME_PIXELS) -> tuple[int, int]:
    """Output size for a decoded frame: ≤ ``max_pixels``, short side ≥ MIN_SIDE."""
    if w * h > max_pixels:
        s = math.sqrt(max_pixels / (w * h))
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
    cc = stream.codec_context
    w, h = int(cc.width or 0), int(cc.height or 0)
    if w * h > MAX_VIDEO_SOURCE_PIXELS:
        container.close()
        raise MediaError(
            f"{name!r} is {w}×{h} pixels per frame; videos larger than "
            f"{MAX_VIDEO_SOURCE_PIXELS / 1e6:.1f} MP per frame (4K) are refused to protect memory. "
            f"Re-export it at 1080p or 4K."
        )
    # FFmpeg's own guard for frames the header did not announce (a size change mid-stream):
    # the decoder refuses to allocate a frame above this many pixels.
    cc.options = {**dict(cc.options or {}), "max_pixels": str(MAX_VIDEO_SOURCE_PIXELS)}
    stream.thread_type = "AUTO"
    stream.thread_count = VIDEO_DECODE_THREADS  # frame threading holds a frame per thread
    return container, stream


def _corrupt_video(name: str, e: BaseException) -> MediaError:
    detail = str(e).strip().rstrip(".") or type(e).__name__
    return MediaError(
        f"{name!r} could not be decoded as a video; it is corrupt or truncated ({detail}). "
        f"Re-export it, e.g. as H.264 MP4."
    )


def _slow_video(name: str) -> MediaError:
    return MediaError(
        f"{name!r} takes more than {VIDEO_DECODE_TIMEOUT_S:.0f} s to decode (very many frames). "
        f"Trim it to the part you ask about, or lower its frame rate."
    )


def _decode_into(p: Path, name: str, wanted: Sequence[int], max_pixels: int, deadline: float | None = None
                 ) -> tuple[np.ndarray | None, list[bool], int, bool]:
    """Decode the frames ``wanted`` (source indices; repeats allowed) in one sequential
    pass straight into one preallocated ``(T, H, W, 3)`` array, each frame resized to at
    most ``max_pixels`` while it is converted (no second copy of the clip is ever made).

    Returns ``(frames or None if none decoded, filled flag per slot, frames seen,
    reached end of stream)``.

    Raises:
        MediaError: ``deadline`` (``time.monotonic()``) passed before the last wanted frame.
    """
    import av

    slots: dict[int, list[int]] = {}
    for pos, i in enumerate(wanted):
        slots.setdefault(int(i), []).append(pos)
    stop = max(slots)
    out: np.ndarray | None = None
    filled = [False] * len(wanted)
    size = None
    seen = 0
    container, stream = _open_video(p, name)
    try:
        for i, frame in enumerate(container.decode(stream)):
            if size is None:
                _check_aspect(frame.width, frame.height, name)
                size = _frame_size(frame.width, frame.height, max_pixels)
            seen = i + 1
            if deadline is not None and time.monotonic() > deadline:
                raise _slow_video(name)
            if i in slots:
                arr = _to_rgb(frame, size)
                if out is None:
                    out = np.empty((len(wanted), *arr.shape), np.uint8)
                for pos in slots[i]:
                    out[pos] = arr
                    filled[pos] = True
            if i >= stop:
                return out, filled, seen, False
    except MediaError:  # (a ValueError too) too slow: not a damaged tail
        raise
    except (av.error.FFmpegError, OSError, ValueError, struct.error) as e:
        if out is None:
            raise _corrupt_video(name, e) from None
        # A damaged tail after good frames: keep what decoded, like a media player would.
    finally:
        container.close()
    return out, filled, seen, True


def _probe(p: Path, name: str, deadline: float | None = None) -> tuple[float, float, int]:
    """(source fps, duration s, total frames) from the headers; counts frames if needed
    (MediaError if that passes ``deadline``)."""
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
                total = 0
                for _ in container.decode(stream):
                    total += 1
                    if deadline is not None and time.monotonic() > deadline:
                        raise _slow_video(name)
            except MediaError:
                raise
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
               max_frames: int = DEFAULT_MAX_FRAMES, budget_bytes: int = MAX_TURN_BYTES) -> VideoClip:
    """Decode a video with PyAV and sample frames the way GLM-4.1V does.

    Frames are taken at ``fps`` per second (:func:`sample_indices`), capped at
    ``max_frames`` spread over the whole clip, and padded by repeating the last frame to an
    even count ≥ 2 (so a 1-frame clip or a 0.5 s clip works). The frames are decoded at
    the resolution where all of them fit ``budget_bytes`` (T × H × W × 3,
    :func:`frame_pixel_cap`; at most :data:`MAX_VIDEO_FRAME_PIXELS` each); tiny frames
    are upscaled to a short side of :data:`MIN_SIDE`; the stream's display rotation is
    applied. Decoding is one sequential pass that stops after the last wanted frame.

    Args:
        path: video file (mp4, webm, mov, mkv, avi; any codec FFmpeg decodes).
        fps: sampling rate in frames per second, 0 < fps ≤ :data:`MAX_FPS`.
        max_frames: cap on sampled frames, 2 … :data:`MAX_MAX_FRAMES` (rounded down to even).
        budget_bytes: decoded bytes the clip may hold (default
            :data:`~studio.engine.infer.media.limits.MAX_TURN_BYTES`).

    Returns:
        :class:`VideoClip` with frames uint8 ``(T, H, W, 3)`` and VideoMetadata-style dict.

    Raises:
        InputError: fps or max_frames out of range.
        MediaError: missing/empty/corrupt file, no video stream ("has no video stream"),
            no decodable frame, coded frames over :data:`MAX_VIDEO_SOURCE_PIXELS`, aspect
            ratio above :data:`MAX_ASPECT`, more than :data:`VIDEO_DECODE_TIMEOUT_S` seconds
            of decoding.
    """
    _check_video_settings(fps, max_frames)
    p = _check_file(path)
    name = _name(p)
    kind = kind_of(p)
    if kind != "video":
        raise MediaError(f"{name!r} is not a video (it looks like a {kind}). Choose a video file.")

    deadline = time.monotonic() + VIDEO_DECODE_TIMEOUT_S
    src_fps, duration, total = _probe(p, name, deadline)
    wanted = sample_indices(total, src_fps, fps, max_frames, duration)
    frames, filled, seen, ended = _decode_into(p, name, wanted, frame_pixel_cap(len(wanted), budget_bytes), deadline)
    if seen == 0 or frames is None:
        raise MediaError(f"{name!r} has a video stream but no decodable frames. Choose another video.")
    if ended and (seen < total or not all(filled)):
        # The header promised more frames than the stream holds: sample the real count.
        total = seen
        duration = min(duration, total / src_fps) if duration > 0 else total / src_fps
        again = sample_indices(total, src_fps, fps, max_frames, duration)
        if again != list(wanted):
            frames = None  # free the first pass before the second
            frames, filled, _, _ = _decode_into(p, name, again, frame_pixel_cap(len(again), budget_bytes), deadline)
            wanted = again
            if frames is None:
                raise MediaError(f"{name!r} has a video stream but no decodable frames. Choose another video.")
        # If a damaged stream still withholds a frame, use the nearest earlier decoded one.
        wanted = list(wanted)
        first = filled.index(True)
        for pos in range(len(wanted)):
            if not filled[pos]:
                src = max([j for j in range(pos) if filled[j]] or [first])
                frames[pos] = frames[src]
                wanted[pos] = wanted[src]
                filled[pos] = True
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
