"""Every script in bench/ runs at its smallest size (a benchmark nobody runs rots).

Each is started as a user would (``python bench/X.py …``) and must exit 0 and print its
summary line. The numbers are not checked here: they are measurements, not tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")

# script → (smallest arguments, a line its output must contain)
SMOKE = {
    "startup.py": (["--reps", "1", "--cold", "0", "--model", "embedded"], "goal: page served"),
    "chat_stream.py": (["--reps", "1", "--tokens-tiny", "8", "--tokens-long", "0", "--skip-mid"], "tiny"),
    "sft_vs_trl.py": (["--steps", "2", "--batch-size", "1"], "samples/s"),
    "gpu.py": (["--scale", "tiny", "--skip-qlora", "--new-tokens", "4", "--seq-len", "64"], "| measure | value |"),
    "verifiers.py": (["--size", "small", "--no-threads"], "slowest single verification"),
    "rlcs_vs_uniform.py": (["--seeds", "1", "--max-steps", "1", "--batch", "2", "--group", "2", "--eval-every", "1",
                            "--eval-prompts", "2", "--thinking-budget", "4", "--answer-budget", "4",
                            "--model", "toy-thinking", "--grading", "0"], "RLCS"),
    "train_overhead.py": (["--quick"], "ratios (product"),
}
# script → ratio names whose line must carry a number ("<name> = 0.873 (min …"): the bench produced them
RATIOS = {
    "train_overhead.py": ("sft-full steps/s ratio studio/hand", "sft-full peak RSS ratio studio/hand",
                          "rl step overhead beyond generate+update", "rl generation tokens/s studio/raw",
                          "eval generation tokens/s studio/raw"),
}


def test_every_bench_script_has_a_smoke_test():
    scripts = {p.name for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_")}
    assert scripts <= set(SMOKE), f"add a smoke test for {sorted(scripts - set(SMOKE))}"


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_bench_script_runs_at_smallest_size(script, tmp_path):
    if not (REPO / "bench" / script).is_file():
        pytest.skip(f"bench/{script} is not in this tree")
    args, expect = SMOKE[script]
    if script == "rlcs_vs_uniform.py":
        args = [*args, "--out", str(tmp_path / "runs")]
    r = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"bench/{script} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    assert expect in r.stdout, r.stdout[-2000:]
    for name in RATIOS.get(script, ()):
        assert re.search(rf"^{re.escape(name)} = -?\d+\.\d+ ", r.stdout, re.M), f"no {name!r} ratio:\n{r.stdout[-3000:]}"
