"""Time ``studio ui`` from process start to the first HTTP 200 and to "model ready".

Goal: the page is served <= 8 s after start on a warm 2-core machine; the model keeps
loading in the background and the Chat tab shows its progress until it is ready.

Each run starts ``python -m studio ui --port P`` (offline) as a child process, polls
``http://127.0.0.1:P/`` every 50 ms for the first HTTP 200, and reads the child's
stdout for the ``Model ready: … (N s)`` line it prints when the model has loaded.

* **cold** — the first start after an install: Python has no bytecode cache
  (a fresh, empty ``PYTHONPYCACHEPREFIX``, so every module of torch, transformers,
  gradio and studio is compiled again), and the OS page cache is dropped first when this
  process may do so (root with a writable ``/proc/sys/vm/drop_caches``; the output says
  whether it could).
* **warm** — the same start again, caches filled (what a second start on a laptop sees).

Also prints the child's CPU time (user + sys): on a shared machine wall time grows with
other people's load, CPU time much less. Not a test: it prints numbers.

    python bench/startup.py [--reps 3] [--cold 1] [--model toy-thinking]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 8.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(pycache: str | None = None) -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
             PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if pycache:
        e["PYTHONPYCACHEPREFIX"] = pycache
    return e


def drop_page_cache() -> bool:
    """Drop the OS page cache (needs root and a writable /proc/sys/vm/drop_caches)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def one_run(model: str, pycache: str | None = None, timeout: float = 300.0) -> dict:
    """Start ``studio ui`` once; return seconds to the first HTTP 200, to "Model ready",
    and the child's CPU seconds (user + sys, whole life incl. shutdown)."""
    port = free_port()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "studio", "ui", "--port", str(port), "--model", model],
                             cwd=REPO, env=env(pycache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    ready: dict = {}
    lines: list[str] = []

    def read_stdout() -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("Model ready:") and "t" not in ready:
                ready["t"] = time.perf_counter() - t0
            elif line.startswith("error:"):
                ready["error"] = line.strip()

    threading.Thread(target=read_stdout, daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    first_200 = None
    try:
        while "t" not in ready:
            if child.poll() is not None:
                raise SystemExit(f"studio ui exited with {child.returncode}: {child.stderr.read()[-2000:]}")
            if first_200 is None:
                try:
                    with urllib.request.urlopen(url, timeout=1) as r:
                        if r.status == 200:
                            first_200 = time.perf_counter() - t0
                except OSError:
                    pass
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"no HTTP 200 and 'Model ready' within {timeout} s; stdout: {''.join(lines)[-1000:]}")
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"http_200_s": first_200, "model_ready_s": ready["t"], "cpu_s": cpu}


def summary(label: str, runs: list[dict]) -> str:
    h = [r["http_200_s"] for r in runs]
    m = [r["model_ready_s"] for r in runs]
    return (f"{label:5s}: first HTTP 200 best {min(h):.2f} s, median {statistics.median(h):.2f} s | "
            f"model ready best {min(m):.2f} s, median {statistics.median(m):.2f} s ({len(runs)} runs)")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="warm starts")
    ap.add_argument("--cold", type=int, default=1, help="cold starts (0 = none)")
    ap.add_argument("--model", default="toy-thinking", help="what --model the app starts with")
    args = ap.parse_args(argv)
    # build the embedded model once (if asked for) so no run measures its first build
    subprocess.run([sys.executable, "-c", "from studio.engine.infer.models import resolve; import sys; resolve(sys.argv[1])",
                    args.model], cwd=REPO, env=env(), check=True)
    cold, warm = [], []
    for i in range(args.cold):
        dropped = drop_page_cache()
        with tempfile.TemporaryDirectory(prefix="studio-pycache-") as pyc:
            r = one_run(args.model, pycache=pyc)
        cold.append(r)
        print(f"cold {i + 1}: first HTTP 200 after {r['http_200_s']:.2f} s, model ready after "
              f"{r['model_ready_s']:.2f} s (child CPU {r['cpu_s']:.1f} s; no bytecode cache; "
              f"page cache {'dropped' if dropped else 'NOT dropped (no permission)'})", flush=True)
    for i in range(args.reps):
        r = one_run(args.model)
        warm.append(r)
        print(f"warm {i + 1}: first HTTP 200 after {r['http_200_s']:.2f} s, model ready after "
              f"{r['model_ready_s']:.2f} s (child CPU {r['cpu_s']:.1f} s)", flush=True)
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if cold:
        print(summary("cold", cold))
    if warm:
        print(summary("warm", warm))
        best = min(r["http_200_s"] for r in warm)
        print(f"goal: page served <= {GOAL_S:.0f} s warm — {'OK' if best <= GOAL_S else 'ABOVE GOAL'} ({best:.2f} s)")
    return {"cold": cold, "warm": warm}


if __name__ == "__main__":
    main()
