"""Time ``studio ui`` from process start to the first HTTP 200 (goal <= 10 s on CPU).

Starts ``python -m studio ui --port P`` (embedded model, offline) as a child process,
polls ``http://127.0.0.1:P/`` every 50 ms, and records the wall time to the first 200,
then stops the child. Also prints the child's CPU time (user + sys): on a shared,
loaded machine the wall time grows with other people's load while the CPU time does not,
and the split of import / model-load / build / launch time from a separate in-process
run. Not a test: it prints numbers.

    python bench/startup.py [--reps 3]
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
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PHASES = r"""
import time, sys
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import transformers
from transformers import AutoModelForImageTextToText, AutoProcessor
t2 = time.perf_counter()
import gradio
t3 = time.perf_counter()
from studio.config import ModelSpec
from studio.ui.context import AppContext
ctx = AppContext(model=ModelSpec())
ctx.registry.get(ctx.model)
t4 = time.perf_counter()
from studio.ui.app import build_app
demo = build_app(ctx)
t5 = time.perf_counter()
from studio.commands.ui import page_css
demo.launch(server_port=int(sys.argv[1]), prevent_thread_lock=True, quiet=True, css=page_css())
t6 = time.perf_counter()
demo.close()
print(f"import torch {t1-t0:.2f} s | transformers model classes {t2-t1:.2f} s | gradio {t3-t2:.2f} s | "
      f"load model {t4-t3:.2f} s | build app {t5-t4:.2f} s | launch {t6-t5:.2f} s | total {t6-t0:.2f} s")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
             PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return e


def one_run(timeout: float = 120.0) -> tuple[float, float]:
    """Return (seconds to first HTTP 200, child CPU seconds up to then)."""
    port = free_port()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "studio", "ui", "--port", str(port)], cwd=REPO, env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if child.poll() is not None:
                raise SystemExit(f"studio ui exited with {child.returncode}: {child.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        wall = time.perf_counter() - t0
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"no HTTP 200 from {url} within {timeout} s")
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
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    # build the embedded model once so the runs measure a normal start, not the first build
    subprocess.run([sys.executable, "-c", "from studio.engine.tiny import embedded_path; embedded_path()"],
                   cwd=REPO, env=env(), check=True)
    walls, cpus = [], []
    for i in range(args.reps):
        w, c = one_run()
        walls.append(w)
        cpus.append(c)
        print(f"run {i + 1}: first HTTP 200 after {w:.2f} s (child CPU {c:.2f} s, incl. shutdown)")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    best = min(walls)
    print(f"studio ui start → first HTTP 200: best {best:.2f} s, median {statistics.median(walls):.2f} s "
          f"(goal <= 10 s)  {'OK' if best <= 10 else 'ABOVE GOAL'}")
    out = subprocess.run([sys.executable, "-c", PHASES, str(free_port())], cwd=REPO, env=env(),
                         capture_output=True, text=True)
    print("phases (one in-process run):", (out.stdout.strip().splitlines() or [out.stderr[-500:]])[-1])


if __name__ == "__main__":
    main()
