"""Memory plan for Compare: can both models sit on the device, and in which precision?

Why: two 9B GLM-V checkpoints (GLM-4.1V-9B-Thinking, GLM-4.6V-Flash: same shapes,
10.29 B parameters each) are ≈ 2 × 20.6 GB of bf16 weights. On an 80 GB card
both stay resident; on a 48 GB card they just fit; on a 24 GB card they do not fit even
one at a time in bf16. Loading blindly ends in a CUDA out-of-memory error half way
through the second load, so Compare plans first (from the configs only, no weights
read), shows the plan, and then applies it.

Estimate per side (decimal GB, 1 GB = 1e9 bytes):

* **weights** — parameters counted exactly from the model config on the ``meta``
  device (``from_config`` under ``torch.device("meta")``; nothing is allocated).
  bf16 = 2 bytes/param, fp32 = 4. NF4 (bitsandbytes 4-bit, as ``models.load`` does it)
  quantizes only the language model's ``nn.Linear`` weights at
  :data:`NF4_BYTES_PER_PARAM` (4 bits + double-quantized absmax ≈ 4.127 bits); the
  vision tower, ``lm_head``, embeddings, norms and biases stay in bf16
  (``llm_int8_skip_modules=["visual", "lm_head"]``).
* **KV cache** — ``2 × layers × kv_heads × head_dim × bytes`` per token, for
  :data:`DEFAULT_CONTEXT_TOKENS` tokens (prompt incl. visual tokens + new tokens).
  9B bf16: 40 KiB/token → 0.67 GB for 16k tokens.
* **activations** — :data:`ACTIVATION_FRACTION` of the side's weight bytes (at least
  :data:`MIN_ACTIVATION_GB`): the vision MLP on the largest image the processor accepts
  (~49k patches × 13696 × 2 bytes ≈ 1.3 GB for 9B) and prefill temporaries.

Compare generates sequentially (A, then B), so only one side's KV cache and
activations exist at a time: the peak is ``weights(A) + weights(B) + max(margin)``.

Thresholds (documented, tested in tests/test_memplan.py):

* usable = free × :data:`USABLE_FRACTION` (allocator fragmentation, cuBLAS workspaces);
* a plan "fits" when its peak ≤ usable; it is "tight" when it fits with less than
  :data:`TIGHT_FRACTION` of the usable memory to spare (it is still chosen, and said).

Candidates, in order of preference — fidelity first (4-bit changes outputs, and a
comparison where only one side is quantized is not a fair one), then speed:

1. ``both_resident`` — both in bf16 (or the same weights shared by both sides);
2. ``take_turns`` — bf16, one side on the device at a time; the idle side waits in CPU
   RAM (needs host RAM for it; switching costs a host↔device copy per side);
3. ``one_4bit`` — the larger side in 4-bit, the other bf16, both resident;
4. ``both_4bit`` — both in 4-bit, both resident;
5. ``take_turns_4bit`` — both in 4-bit, one on the device at a time;
6. ``does_not_fit`` — nothing fits: the sentence says what to change.

With 2 × 9B (peak bf16 ≈ 41.2 + 0.67 + 1.65 = 43.5 GB): an 80 GB card → both resident;
a 48 GB card (≈ 47 GB free → 44.7 usable) → both resident, tight; a 24 GB card → both
4-bit (≈ 17.1 + 1.4 GB). On CPU the plan is always ``both_resident`` in fp32 (4-bit needs
CUDA; weights are in RAM anyway); it warns if RAM looks short.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from studio.errors import ModelLoadError

GB = 1e9
#: Bytes per parameter of an NF4-quantized Linear weight (4 bits + double-quant absmax).
NF4_BYTES_PER_PARAM = 4.127 / 8
#: Context assumed for the KV cache: prompt (incl. visual tokens) + generated tokens.
DEFAULT_CONTEXT_TOKENS = 16384
#: Activation/temporaries margin as a fraction of a side's weight bytes.
ACTIVATION_FRACTION = 0.08
MIN_ACTIVATION_GB = 0.25
#: Share of the reported free device memory a plan may use.
USABLE_FRACTION = 0.95
#: A plan with less than this share of the usable memory left over is "tight".
TIGHT_FRACTION = 0.10
#: Share of available host RAM the offloaded side(s) may use in take-turns plans.
HOST_USABLE_FRACTION = 0.85

Mode = Literal["both_resident", "take_turns", "one_4bit", "both_4bit", "take_turns_4bit", "does_not_fit"]


@dataclass(frozen=True)
class ModelSize:
    """Parameter counts of one model, from its config (no weights read).

    Attributes:
        total: all parameters.
        quantizable: language-model ``nn.Linear`` weights (what NF4 quantizes).
        num_layers, num_kv_heads, head_dim: text backbone shape (for the KV cache).
    """

    total: int
    quantizable: int
    num_layers: int
    num_kv_heads: int
    head_dim: int

    def weight_bytes(self, dtype_bytes: float, four_bit: bool) -> float:
        """Bytes of the weights in ``dtype_bytes`` per param, or NF4 for the quantizable part."""
        if not four_bit:
            return self.total * dtype_bytes
        rest = self.total - self.quantizable
        return self.quantizable * NF4_BYTES_PER_PARAM + rest * 2.0

    def kv_bytes(self, tokens: int, dtype_bytes: float) -> float:
        """KV-cache bytes for ``tokens`` positions (keys + values, all layers)."""
        return 2.0 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes * tokens


@dataclass(frozen=True)
class DeviceInfo:
    """What the plan fits into.

    Attributes:
        kind: ``"cuda"`` or ``"cpu"``.
        free_gb: free device memory (cuda) or available RAM (cpu), decimal GB.
        total_gb: total device memory (for the sentence only).
        host_free_gb: available host RAM (where an offloaded side waits).
        bf16: the device computes in bf16 (else fp32 weights are planned).
        name: device name for the sentence.
    """

    kind: str
    free_gb: float
    total_gb: float
    host_free_gb: float
    bf16: bool = True
    name: str = ""

    @staticmethod
    def detect(device: str = "auto") -> "DeviceInfo":
        """Measure the current machine: ``torch.cuda.mem_get_info`` and host RAM."""
        import torch

        host = _host_available_gb()
        use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        if use_cuda:
            free, total = torch.cuda.mem_get_info()
            return DeviceInfo("cuda", free / GB, total / GB, host, bool(torch.cuda.is_bf16_supported()),
                              torch.cuda.get_device_name())
        return DeviceInfo("cpu", host, host, host, False, "CPU")

    @staticmethod
    def simulated(total_gb: float, *, host_free_gb: float = 64.0, used_gb: float | None = None,
                  name: str = "") -> "DeviceInfo":
        """A CUDA card of ``total_gb`` with ``used_gb`` taken (default: a CUDA context, ~2 %)."""
        used = total_gb * 0.02 if used_gb is None else used_gb
        return DeviceInfo("cuda", total_gb - used, total_gb, host_free_gb, True, name or f"{total_gb:g} GB GPU")


def _host_available_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().available / GB
    except ImportError:  # pragma: no cover - psutil ships with gradio/accelerate
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / GB
        except OSError:
            pass
        return 0.0


@dataclass
class SideInput:
    """One side as the planner sees it.

    Attributes:
        label: ``"A"`` or ``"B"``.
        size: parameter counts.
        weights_key: sides with the same key share one copy of the weights (same
            model, adapter switched on/off) and are counted once.
        four_bit: the user asked for 4-bit explicitly (kept in every plan).
    """

    label: str
    size: ModelSize
    weights_key: str
    four_bit: bool = False


@dataclass
class SidePlan:
    """What the plan does with one side. GB are decimal."""

    label: str
    load_in_4bit: bool
    weights_gb: float
    margin_gb: float
    shared_with: str | None = None  # label of the side whose weights this one reuses

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.margin_gb


@dataclass
class MemoryPlan:
    """The chosen plan. ``sentence`` is what the UI/CLI shows before loading.

    Attributes:
        mode: see the module docstring.
        device: ``"cuda"`` or ``"cpu"``.
        sides: per-side decisions, keyed ``"A"``/``"B"``.
        peak_gb: estimated peak device memory of the plan (decimal GB).
        usable_gb: the budget it was checked against.
        tight: fits with less than TIGHT_FRACTION to spare.
        sentence: one or two human sentences.
    """

    mode: Mode
    device: str
    sides: dict[str, SidePlan]
    peak_gb: float
    usable_gb: float
    tight: bool = False
    sentence: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def take_turns(self) -> bool:
        """True when only one side may be on the device at a time."""
        return self.mode in ("take_turns", "take_turns_4bit")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["take_turns"] = self.take_turns
        return d


def _margin_gb(size: ModelSize, weights_gb: float, dtype_bytes: float, context_tokens: int) -> float:
    kv = size.kv_bytes(context_tokens, dtype_bytes) / GB
    return kv + max(MIN_ACTIVATION_GB, ACTIVATION_FRACTION * weights_gb)


def plan_memory(sides: list[SideInput], device: DeviceInfo, *,
                context_tokens: int = DEFAULT_CONTEXT_TOKENS, host_figures: bool = True) -> MemoryPlan:
    """Choose how to hold ``sides`` on ``device`` (see the module docstring for the rules).

    Args:
        sides: one or two :class:`SideInput` (labels unique).
        device: measured (:meth:`DeviceInfo.detect`) or simulated.
        context_tokens: tokens of KV cache to reserve per generation.
        host_figures: say how much memory this machine has free (and the budget) in the
            sentence; False on a public server, whose visitors see only the models' needs.

    Returns:
        A :class:`MemoryPlan`; ``mode == "does_not_fit"`` when nothing fits (never raises
        for that: the caller decides; :func:`require_fit` raises).
    """
    cuda = device.kind == "cuda"
    dtype_bytes = 2.0 if (cuda and device.bf16) else 4.0
    precision = "bf16" if dtype_bytes == 2.0 else "fp32"
    # Sides sharing weights: the first one with a key owns the copy.
    owner: dict[str, str] = {}
    for s in sides:
        owner.setdefault(s.weights_key, s.label)
    copies = [s for s in sides if owner[s.weights_key] == s.label]

    def build(four_bit_labels: set[str]) -> dict[str, SidePlan]:
        out: dict[str, SidePlan] = {}
        for s in sides:
            o = owner[s.weights_key]
            q = (o in four_bit_labels) or any(x.four_bit for x in sides if x.weights_key == s.weights_key)
            w = s.size.weight_bytes(dtype_bytes, q) / GB
            m = _margin_gb(s.size, w, 2.0 if q else dtype_bytes, context_tokens)
            out[s.label] = SidePlan(s.label, q, w, m, shared_with=None if o == s.label else o)
        return out

    def peak(plans: dict[str, SidePlan], turns: bool) -> float:
        own = [plans[c.label] for c in copies]
        margin = max(p.margin_gb for p in plans.values())
        if turns:
            return max(p.weights_gb for p in own) + margin
        return sum(p.weights_gb for p in own) + margin

    if not cuda:
        plans = build(set())
        pk = peak(plans, False)
        notes = []
        if pk > device.free_gb and host_figures:
            notes.append(f"The estimate ({pk:.1f} GB) is more than the available RAM ({device.free_gb:.1f} GB): "
                         f"expect swapping, or pick smaller models.")
        p = MemoryPlan("both_resident", "cpu", plans, pk, device.free_gb, False, notes=notes)
        p.sentence = _sentence(p, precision, device, host_figures)
        return p

    usable = device.free_gb * USABLE_FRACTION
    largest = max(copies, key=lambda s: s.size.total).label
    candidates: list[tuple[Mode, set[str], bool]] = [
        ("both_resident", set(), False),
        ("take_turns", set(), True),
        ("one_4bit", {largest}, False),
        ("both_4bit", {c.label for c in copies}, False),
        ("take_turns_4bit", {c.label for c in copies}, True),
    ]
    if len(copies) == 1:  # one copy of the weights: "take turns" means nothing
        candidates = [c for c in candidates if c[0] in ("both_resident", "both_4bit")]
    for mode, q, turns in candidates:
        plans = build(q)
        if mode == "both_resident" and any(p.load_in_4bit for p in plans.values()):
            mode = "both_4bit" if all(p.load_in_4bit for p in plans.values()) else "one_4bit"
        pk = peak(plans, turns)
        if pk > usable:
            continue
        if turns:
            idle = sum(plans[c.label].weights_gb for c in copies) - max(plans[c.label].weights_gb for c in copies)
            if idle > device.host_free_gb * HOST_USABLE_FRACTION:
                continue
        p = MemoryPlan(mode, "cuda", plans, pk, usable, tight=(usable - pk) < TIGHT_FRACTION * usable)
        p.sentence = _sentence(p, precision, device, host_figures)
        return p
    plans = build({c.label for c in copies})
    p = MemoryPlan("does_not_fit", "cuda", plans, peak(plans, True), usable)
    p.sentence = _sentence(p, precision, device, host_figures)
    return p


def _gb(x: float) -> str:
    return f"{x:.1f} GB" if x >= 1 else f"{x:.2f} GB"


def _sentence(p: MemoryPlan, precision: str, device: DeviceInfo, host_figures: bool = True) -> str:
    per = "; ".join(
        f"{k}: {'shares ' + v.shared_with + chr(39) + 's weights' if v.shared_with else ''}"
        f"{'' if v.shared_with else ('4-bit' if v.load_in_4bit else precision) + ' ' + _gb(v.weights_gb)}"
        f" + {_gb(v.margin_gb)} KV cache/activations"
        for k, v in sorted(p.sides.items())
    )
    where = f"{device.name or device.kind} with {device.free_gb:.1f} GB free"
    head = {
        "both_resident": f"Both models stay loaded in {precision if p.device == 'cuda' else 'float32'}",
        "take_turns": f"Take turns in {precision}: only the side that is generating is on the GPU; "
                      f"the other waits in CPU RAM (each switch copies its weights, a few seconds for 9B)",
        "one_4bit": "One side in 4-bit (NF4), the other in " + precision + ", both loaded "
                    "(the 4-bit side's outputs can differ slightly from its bf16 weights)",
        "both_4bit": "Both models in 4-bit (NF4), both loaded (outputs can differ slightly from bf16)",
        "take_turns_4bit": "Both in 4-bit and taking turns on the GPU (the idle side waits in CPU RAM)",
        "does_not_fit": f"The models do not fit on this device even in 4-bit taking turns "
                        f"(needs about {p.peak_gb:.1f} GB); pick smaller models or a bigger GPU",
    }[p.mode]
    if p.device == "cpu":
        head = "On CPU both models stay loaded in float32 RAM"
    if any(v.shared_with for v in p.sides.values()) and p.mode != "does_not_fit":
        four = any(v.load_in_4bit for v in p.sides.values())
        prec = "4-bit (NF4)" if four else (precision if p.device == "cuda" else "float32")
        head = f"A and B share one loaded copy of the weights in {prec}"
    tail = f" — peak ≈ {p.peak_gb:.1f} GB of {where}" if host_figures else f" — peak ≈ {p.peak_gb:.1f} GB"
    if p.device == "cuda" and p.mode != "does_not_fit" and host_figures:
        tail += f" (budget {p.usable_gb:.1f} GB)"
    if p.tight:
        tail += "; tight: long prompts or big images may run out of memory"
    text = f"{head}{tail}. {per}."
    if p.notes:
        text += " " + " ".join(p.notes)
    return text


def require_fit(plan: MemoryPlan) -> MemoryPlan:
    """Return ``plan``; raise :class:`ModelLoadError` with its sentence if nothing fits."""
    if plan.mode == "does_not_fit":
        raise ModelLoadError(plan.sentence)
    return plan


# ---------------------------------------------------------------- sizes from configs

#: Public configs of the two real checkpoints (docs/FACTS.md), used when their
#: config.json is not in the local cache (offline machines can still plan).
PUBLISHED_GLM41V_9B = dict(
    text_config=dict(hidden_size=4096, intermediate_size=13696, num_hidden_layers=40,
                     num_attention_heads=32, num_key_value_heads=2, vocab_size=151552,
                     attention_bias=True, partial_rotary_factor=0.5, max_position_embeddings=65536),
    vision_config=dict(depth=24, hidden_size=1536, num_heads=12, patch_size=14, image_size=336,
                       spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=4096,
                       intermediate_size=13696),
    tie_word_embeddings=False,
)


#: GLM-4.6V-Flash: the same dense glm4v shapes (the hub reports 10,292,777,472
#: parameters, equal to the count of the config above) with a 128K context
#: (docs/FAMILIES.md; the exact config.json is unconfirmed offline).
PUBLISHED_GLM46V_FLASH = dict(
    PUBLISHED_GLM41V_9B,
    text_config=dict(PUBLISHED_GLM41V_9B["text_config"], max_position_embeddings=131072),
    image_token_id=151363, video_token_id=151364,
)


def size_from_config(config) -> ModelSize:
    """Count parameters of a GLM-4.1V ``config`` on the meta device (nothing allocated).

    Source: ``AutoModelForImageTextToText.from_config`` under ``torch.device("meta")``;
    ~3 s for a 9B config on CPU, cached by config content. Not ``accelerate.init_empty_weights``:
    it patches ``nn.Module.register_parameter`` for the whole process, so a model another thread
    loads meanwhile (a visitor's plan while the app loads its model) got meta parameters; the
    device context is a thread-local torch function mode.
    """
    return _size_cached(json.dumps(config.to_dict(), sort_keys=True, default=str))


@functools.lru_cache(maxsize=32)
def _size_cached(config_json: str) -> ModelSize:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    d = json.loads(config_json)
    model_type = d.pop("model_type", "glm4v")
    config = AutoConfig.for_model(model_type, **d)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    quant = sum(
        m.weight.numel() for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and ".visual" not in f".{n}" and not n.endswith("lm_head")
    )
    tc = getattr(config, "text_config", config)
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    return ModelSize(int(total), int(quant), int(tc.num_hidden_layers),
                     int(getattr(tc, "num_key_value_heads", None) or tc.num_attention_heads), int(head_dim))


def size_of(name_or_path: str) -> ModelSize:
    """Parameter counts of a model folder or hub id, from its config only.

    Falls back to the published 9B configs for the two official GLM-4.1V ids and
    GLM-4.6V-Flash when their config is not cached locally (offline).

    Raises:
        ModelLoadError: unknown model whose config cannot be read, or not a GLM-4.1V.
    """
    from studio.config import BASE_ID, FLASH_ID, THINKING_ID
    from studio.engine.infer.models import check_architecture, resolve

    path = resolve(name_or_path)
    try:
        config = check_architecture(path)
    except ModelLoadError:
        if name_or_path in (BASE_ID, THINKING_ID, FLASH_ID):
            from transformers import Glm4vConfig

            config = Glm4vConfig(**(PUBLISHED_GLM46V_FLASH if name_or_path == FLASH_ID else PUBLISHED_GLM41V_9B))
        else:
            raise
    return size_from_config(config)
