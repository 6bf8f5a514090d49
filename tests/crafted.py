"""A crafted client: talks to a gradio app over plain HTTP, as an attacker would.

``gradio_client`` only calls the endpoints an app documents; a crafted client can call
*every* event of the page by its index (``fn_index``), choose its own ``session_hash``
and send any value. The public-mode tests use this to show what such a client gets.

Also the crafted files of the memory probes (a PDF of huge pages, a PNG that declares more
pixels than it holds) and an RSS watcher for an app served in this process.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx


class Raw:
    """A client of one gradio app (``url``), with a session hash of its choosing."""

    def __init__(self, url: str, session_hash: str | None = None, timeout: float = 300.0):
        self.url = url.rstrip("/") + "/"
        self.session_hash = session_hash or secrets.token_hex(6)
        self.http = httpx.Client(timeout=timeout)
        self.config = self.http.get(self.url + "config").json()

    def fns(self) -> list[dict]:
        """The app's events as its config lists them (every one, private ones too)."""
        return self.config["dependencies"]

    def fn_index(self, qualname_part: str, *, api_name: str | None = None, n: int = 0) -> int:
        """The index of the ``n``-th event whose API name is ``api_name`` or, for private
        events, whose ``api_name`` in the config starts with ``qualname_part``."""
        hits = [d["id"] for d in self.fns()
                if (api_name is not None and d.get("api_name") == api_name)
                or (api_name is None and str(d.get("api_name", "")).startswith(qualname_part))]
        return hits[n]

    def n_inputs(self, fn_index: int) -> int:
        dep = next(d for d in self.fns() if d["id"] == fn_index)
        return len(dep["inputs"])

    def upload(self, path: str | Path) -> dict:
        """Upload a file as the page would; returns the FileData value to send."""
        with open(path, "rb") as f:
            r = self.http.post(self.url + "gradio_api/upload", files={"files": (Path(path).name, f)})
        r.raise_for_status()
        server_path = r.json()[0]
        return {"path": server_path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}

    def join(self, fn_index: int, data: list[Any]) -> tuple[int, Any]:
        """Join the queue with ``data``; returns (HTTP status, JSON body)."""
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session_hash,
                "event_data": None, "trigger_id": None}
        r = self.http.post(self.url + "gradio_api/queue/join", json=body)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    def results(self, until: int = 1) -> list[dict]:
        """Read this session's event stream until ``until`` events completed; returns the
        ``process_completed`` messages (``success``, ``output`` …) in order."""
        done: list[dict] = []
        with self.http.stream("GET", self.url + "gradio_api/queue/data",
                              params={"session_hash": self.session_hash}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    done.append(msg)
                    if len(done) >= until:
                        break
                elif msg.get("msg") == "close_stream":
                    break
        return done

    def call(self, fn_index: int, data: list[Any]) -> tuple[bool, Any]:
        """Join and wait: (success, output data or the error message)."""
        status, body = self.join(fn_index, data)
        if status != 200:
            return False, body.get("detail") if isinstance(body, dict) else body
        (msg,) = self.results(1)
        out = msg.get("output") or {}
        if msg.get("success"):
            return True, out.get("data")
        return False, out.get("error") or out


# ------------------------------------------------------------------ crafted files and memory
def rss_mb() -> float:
    """This process's resident memory in MB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def big_pages_pdf(path: Path, pages: int = 20, size: int = 14400) -> Path:
    """A tiny PDF whose pages are 14,400 pt (200 in) square: PDF's largest page size."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{' '.join(f'{3 + i} 0 R' for i in range(pages))}] /Count {pages} >>".encode()]
    objs += [f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {size} {size}] >>".encode() for _ in range(pages)]
    body, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs):
        offsets.append(len(body))
        body += f"{i + 1} 0 obj\n".encode() + o + b"\nendobj\n"
    xref = len(body)
    body += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    body += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    body += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(body)
    return path


def png_of_size(path: Path, w: int, h: int, *, rows: bool) -> Path:
    """An RGBA PNG of w×h: with all its rows (solid, compresses ~1000:1), or only a header
    that declares the size (``rows=False``: 100 bytes that claim 144 MP)."""
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    co = zlib.compressobj(1)
    if rows:
        row = b"\x00" + b"\x10\x20\x30\xff" * w
        data = b"".join([co.compress(row) for _ in range(h)] + [co.flush()])
    else:
        data = zlib.compress(b"\x00" * 16)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def measure_rss(fn) -> tuple[object, float, float]:
    """(result, peak RSS growth, RSS growth after) in MB while ``fn`` runs in this process
    (the app is served in-process)."""
    import gc

    gc.collect()
    before, peak, stop = rss_mb(), [0.0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()
    try:
        out = fn()
    finally:
        stop.set()
        t.join()
    gc.collect()
    time.sleep(0.5)
    return out, peak[0] - before, rss_mb() - before
