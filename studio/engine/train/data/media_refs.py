"""Media a data row names → a file the loaders can open.

A row may name its images and videos as

* a path: relative paths resolve against the data file's folder (when nothing is there but the
  path exists from the working folder — LLaMA-Factory v1 rows name ``data/…`` from its root —
  that file is taken); absolute paths, ``~`` and
  paths anywhere the user can read are taken as given (it is the user's own data on the
  user's own machine; the public Space builds no training tab, so no visitor's row reaches
  here);
* a ``file://`` URL (read as the path it names);
* a ``data:image/png;base64,…`` URL, raw bytes, a ``{"bytes": …, "path": …}`` cell (Parquet
  files and ``datasets`` Image columns store images so) or a PIL image: written **once** to
  a cache folder beside the data, ``<data folder>/.studio_media/<sha1>.<ext>``, and the row
  points at that file (a second load finds it and writes nothing). When the data folder is
  read-only the cache is ``~/.cache/glm4v-studio/media/<hash of the data folder>/``.

``http(s)://`` and other remote URLs are refused with the fix (download the file): a
training run must not depend on the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from studio.errors import DataError

CACHE_DIR_NAME = ".studio_media"
#: Audio suffixes: GLM-4.1V reads images and video only, rows naming these are refused.
AUDIO_EXTS = (".mp3", ".wav", ".flac", ".m4a", ".ogg", ".aac", ".opus", ".wma")

_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"\x1aE\xdf\xa3", ".webm"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))


class MediaCache:
    """The folder embedded media are written to, once each, named by the SHA-1 of their bytes.

    Args:
        base: the data file's folder; the cache is ``base/.studio_media`` when that can be
            written, else ``~/.cache/glm4v-studio/media/<sha1(base)[:16]>``.
    """

    def __init__(self, base: Path):
        self.base = Path(base).resolve()
        self._dir: Path | None = None
        self.written = 0  # files written by this cache object (0 on a second load)

    def folder(self) -> Path:
        """The cache folder, created on first use."""
        if self._dir is None:
            beside = self.base / CACHE_DIR_NAME
            try:
                beside.mkdir(parents=True, exist_ok=True)
                if not os.access(beside, os.W_OK):
                    raise PermissionError(str(beside))
                self._dir = beside
            except OSError:
                key = hashlib.sha1(str(self.base).encode()).hexdigest()[:16]
                self._dir = Path.home() / ".cache" / "glm4v-studio" / "media" / key
                self._dir.mkdir(parents=True, exist_ok=True)
        return self._dir

    def write(self, data: bytes, suffix: str = "") -> str:
        """Store ``data`` (unless a file with the same bytes is there) → its absolute path."""
        suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix or "") else sniff_suffix(data)
        out = self.folder() / (hashlib.sha1(data).hexdigest()[:20] + suffix.lower())
        if not out.exists():
            tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(out)
            self.written += 1
        return str(out)


def sniff_suffix(data: bytes) -> str:
    """File suffix for media bytes from their first bytes (``.png``, ``.jpg``, ``.mp4`` …);
    ``.bin`` when unknown (the decoders read content, not names).

    >>> sniff_suffix(b"\\x89PNG\\r\\n"), sniff_suffix(b"\\x00\\x00\\x00\\x18ftypmp42"), sniff_suffix(b"xyz")
    ('.png', '.mp4', '.bin')
    """
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[4:8] == b"ftyp":
        return ".mp4"
    if data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"AVI "):
        return ".webp" if data[8:12] == b"WEBP" else ".avi"
    return ".bin"


def is_audio_ref(ref: Any) -> bool:
    """True when a media reference names an audio file (by suffix or data-URL type)."""
    if isinstance(ref, dict):
        ref = ref.get("path") or ref.get("url") or ""
    if not isinstance(ref, str):
        return False
    s = ref.strip().lower()
    return s.startswith("data:audio/") or Path(urlparse(s).path if "://" in s else s).suffix in AUDIO_EXTS


def resolve_media(ref: Any, base: Path, where: str, cache: MediaCache | None = None) -> str:
    """One media reference of a row → an absolute file path (the file need not exist yet:
    the doctor's ``files`` check reports missing ones).

    Args:
        ref: a path string (relative to ``base`` or absolute), a ``file://`` or ``data:``
            URL, bytes, a ``{"bytes", "path"}`` / ``{"url"}`` / ``{"path"}`` dict, or a PIL image.
        base: the data file's folder.
        where: row label for error messages (``"data.jsonl row 3 (line 3)"``).
        cache: where embedded bytes go (default ``MediaCache(base)``).

    Returns: the absolute path (symlinks resolved).

    Raises:
        DataError: an empty or non-path value, a remote URL, an undecodable data URL.
    """
    base = Path(base).resolve()
    cache = cache or MediaCache(base)
    if isinstance(ref, (bytes, bytearray, memoryview)):
        return cache.write(bytes(ref))
    if isinstance(ref, dict):
        data, path = ref.get("bytes"), ref.get("path")
        if data:
            suffix = Path(path).suffix if isinstance(path, str) else ""
            return cache.write(bytes(data), suffix)
        for key in ("path", "url", "image", "video"):
            if isinstance(ref.get(key), str) and ref[key].strip():
                return resolve_media(ref[key], base, where, cache)
        raise DataError(f"{where}: media entry {_short(ref)} holds neither bytes nor a path; give a file path.")
    if hasattr(ref, "save") and hasattr(ref, "size"):  # a PIL image (datasets decoded it)
        buf = io.BytesIO()
        ref.convert("RGB").save(buf, format="PNG")
        return cache.write(buf.getvalue(), ".png")
    if not isinstance(ref, str) or not ref.strip():
        raise DataError(f"{where}: media {_short(ref)} is not a file path; give a path relative to the data "
                        f"file or an absolute one.")
    s = ref.strip()
    if s.startswith("data:"):
        return cache.write(_data_url_bytes(s, where), _data_url_suffix(s))
    if s.startswith("file://"):
        s = unquote(urlparse(s).path)
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s):
        raise DataError(f"{where}: media {s[:80]!r} is a URL; download the file (e.g. next to the data file) "
                        f"and give its path — training reads local files only.")
    p = Path(os.path.expanduser(s))
    if p.is_absolute():
        return str(p.resolve())
    if not (base / p).exists() and (Path.cwd() / p).exists():
        return str((Path.cwd() / p).resolve())  # written against the working folder (LLaMA-Factory v1 rows)
    return str((base / p).resolve())


def _data_url_bytes(url: str, where: str) -> bytes:
    head, _, payload = url.partition(",")
    try:
        if head.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return unquote(payload).encode("latin-1")
    except (binascii.Error, ValueError):
        raise DataError(f"{where}: a data: URL does not decode as base64; re-encode the image or give a file "
                        f"path.") from None


def _data_url_suffix(url: str) -> str:
    m = re.match(r"data:[a-z]+/([A-Za-z0-9.+-]+)", url)
    sub = (m.group(1).lower() if m else "").replace("jpeg", "jpg").replace("svg+xml", "svg")
    return f".{sub}" if re.fullmatch(r"[a-z0-9]{1,5}", sub) else ""


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "…"
