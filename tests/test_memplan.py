"""Compare's memory plan: a table of simulated devices and model pairs."""

from __future__ import annotations

import pytest

from studio.engine.infer.memplan import (
    DeviceInfo,
    ModelSize,
    SideInput,
    plan_memory,
    require_fit,
    size_from_config,
)
from studio.errors import ModelLoadError

# GLM-4.1V-9B as counted from its published config (checked in test_9b_param_count).
NINE_B = ModelSize(total=10_292_777_472, quantizable=8_157_921_280, num_layers=40, num_kv_heads=2, head_dim=128)
# A ~2B-style model with the same layout, smaller.
TWO_B = ModelSize(total=2_000_000_000, quantizable=1_500_000_000, num_layers=28, num_kv_heads=2, head_dim=128)


def pair(a: ModelSize, b: ModelSize, *, same=False, a4=False, b4=False):
    return [SideInput("A", a, "a", a4), SideInput("B", b, "a" if same else "b", b4)]


TABLE = [
    # (name, sides, device, mode, tight, 4-bit sides)
    ("80GB 2x9B", pair(NINE_B, NINE_B), DeviceInfo.simulated(80), "both_resident", False, set()),
    ("48GB 2x9B", pair(NINE_B, NINE_B), DeviceInfo.simulated(48), "both_resident", True, set()),
    ("40GB 2x9B", pair(NINE_B, NINE_B), DeviceInfo.simulated(40), "take_turns", False, set()),
    ("40GB 2x9B no host RAM", pair(NINE_B, NINE_B), DeviceInfo.simulated(40, host_free_gb=8),
     "one_4bit", False, {"A"}),
    ("24GB 2x9B", pair(NINE_B, NINE_B), DeviceInfo.simulated(24), "both_4bit", False, {"A", "B"}),
    ("16GB 2x9B", pair(NINE_B, NINE_B), DeviceInfo.simulated(16), "take_turns_4bit", False, {"A", "B"}),
    ("8GB 2x9B", pair(NINE_B, NINE_B), DeviceInfo.simulated(8), "does_not_fit", False, {"A", "B"}),
    ("24GB 9B+2B", pair(TWO_B, NINE_B), DeviceInfo.simulated(24), "one_4bit", False, {"B"}),
    ("32GB 9B shared (adapter on/off)", pair(NINE_B, NINE_B, same=True), DeviceInfo.simulated(32),
     "both_resident", False, set()),
    ("16GB 9B shared", pair(NINE_B, NINE_B, same=True), DeviceInfo.simulated(16), "both_4bit", False, {"A", "B"}),
    ("80GB user asked 4-bit for B", pair(NINE_B, NINE_B, b4=True), DeviceInfo.simulated(80), "one_4bit", False, {"B"}),
    ("CPU 2x9B", pair(NINE_B, NINE_B), DeviceInfo("cpu", 200, 200, 200, False, "CPU"), "both_resident", False, set()),
]


@pytest.mark.parametrize("name,sides,device,mode,tight,four_bit", TABLE, ids=[t[0] for t in TABLE])
def test_plan_table(name, sides, device, mode, tight, four_bit):
    plan = plan_memory(sides, device)
    assert plan.mode == mode, plan.sentence
    assert plan.tight == tight, plan.sentence
    assert {k for k, v in plan.sides.items() if v.load_in_4bit} == four_bit
    if mode != "does_not_fit":
        assert plan.peak_gb <= plan.usable_gb
    assert plan.sentence and f"{plan.peak_gb:.1f} GB" in plan.sentence


def test_plan_numbers_9b():
    """2×9B bf16: ≈ 41.2 GB of weights, + one side's KV cache and activations."""
    plan = plan_memory(pair(NINE_B, NINE_B), DeviceInfo.simulated(80))
    a = plan.sides["A"]
    assert a.weights_gb == pytest.approx(20.59, abs=0.01)
    # KV: 2*40*2*128*2 bytes * 16384 tokens = 0.671 GB; activations 8 % of 20.59 GB
    assert a.margin_gb == pytest.approx(0.671 + 1.647, abs=0.01)
    assert plan.peak_gb == pytest.approx(41.17 + 2.32, abs=0.02)
    four = plan_memory(pair(NINE_B, NINE_B), DeviceInfo.simulated(24)).sides["A"]
    assert four.weights_gb == pytest.approx(8.157 * 4.127 / 8 + 2.135 * 2, abs=0.01)


def test_shared_weights_counted_once():
    plan = plan_memory(pair(NINE_B, NINE_B, same=True), DeviceInfo.simulated(80))
    assert plan.sides["B"].shared_with == "A"
    assert "shares A's weights" in plan.sentence
    assert plan.peak_gb == pytest.approx(20.59 + 2.32, abs=0.02)


def test_cpu_warns_when_ram_short():
    plan = plan_memory(pair(NINE_B, NINE_B), DeviceInfo("cpu", 16, 16, 16, False, "CPU"))
    assert plan.mode == "both_resident" and plan.notes
    assert "more than the available RAM" in plan.sentence
    # fp32 on CPU: 4 bytes/param
    assert plan.sides["A"].weights_gb == pytest.approx(41.17, abs=0.02)


def test_require_fit_raises_with_sentence():
    plan = plan_memory(pair(NINE_B, NINE_B), DeviceInfo.simulated(8))
    with pytest.raises(ModelLoadError, match="do not fit"):
        require_fit(plan)


def test_detect_on_this_machine():
    import torch

    info = DeviceInfo.detect()
    assert info.kind == ("cuda" if torch.cuda.is_available() else "cpu")
    assert info.free_gb > 0 and info.host_free_gb > 0


def test_9b_param_count():
    """Meta-device count of the published 9B config matches FACTS.md (≈ 10.29 B)."""
    from transformers import Glm4vConfig

    from studio.engine.infer.memplan import PUBLISHED_GLM41V_9B

    size = size_from_config(Glm4vConfig(**PUBLISHED_GLM41V_9B))
    assert size == NINE_B


def test_tiny_size_matches_loaded_model(tiny):
    from studio.engine.infer.memplan import size_of

    model, _ = tiny
    size = size_of(model.studio_path)
    assert size.total == sum(p.numel() for p in model.parameters())
    assert size.num_layers == 2 and size.num_kv_heads == 2 and size.head_dim == 32


def test_a_plan_while_another_thread_loads_the_model_leaves_its_weights_real(tiny_path):
    """A visitor's memory plan counts parameters on the meta device; a model loaded by another
    thread meanwhile (the app's model at start-up) must still get real weights. With
    ``accelerate.init_empty_weights`` (a process-wide patch) it got meta tensors."""
    import threading

    from transformers import AutoConfig

    from studio.config import ModelSpec
    from studio.engine.infer import memplan
    from studio.engine.infer.models import load

    config = AutoConfig.from_pretrained(tiny_path)
    done = threading.Event()

    def plans():
        while not done.is_set():
            memplan._size_cached.cache_clear()
            memplan.size_from_config(config)

    t = threading.Thread(target=plans)
    t.start()
    try:
        for _ in range(4):
            model, _ = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
            assert not any(p.is_meta for p in model.parameters())
    finally:
        done.set()
        t.join()
