"""GPU benchmark for GLM-4.1V-9B at full size with random bf16 weights (no hub needed).

One command, <= 8 minutes on one NVIDIA GPU:

    python bench/gpu.py --out bench_gpu.json

Builds GLM-4.1V-9B from a config written in code (sizes of the real checkpoint, see
docs/FACTS.md: ~10.3 B parameters), then measures

* prefill time for one 1024×1024 image + a short question,
* decode tokens/s at batch 1 (fixed token count, greedy) and the % of the
  memory-bandwidth bound (weight bytes read per token ÷ measured device bandwidth),
* peak GPU memory of inference,
* one QLoRA SFT step (NF4 4-bit weights via bitsandbytes, LoRA r=16 on the language
  model): time and peak memory,
* whether Base + Thinking fit side by side as the Compare memory plan says.

``--scale tiny`` runs the same code on a small config (CPU is fine) to check the script.
Random weights make the text meaningless; speed and memory are what a real checkpoint
of the same shapes costs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Real GLM-4.1V-9B sizes (public config; docs/FACTS.md).
FULL = dict(
    text=dict(hidden_size=4096, intermediate_size=13696, num_hidden_layers=40,
              num_attention_heads=32, num_key_value_heads=2, max_position_embeddings=65536,
              rms_norm_eps=1e-5, attention_bias=True, partial_rotary_factor=0.5,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                               "mrope_section": [8, 12, 12]},
              vocab_size=151552),
    vision=dict(depth=24, hidden_size=1536, num_heads=12, intermediate_size=13696,
                out_hidden_size=4096, patch_size=14, image_size=336, spatial_merge_size=2,
                temporal_patch_size=2),
    image_pixels=(12544, 9633792),
)
TINY = dict(
    text=dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
              rms_norm_eps=1e-5, attention_bias=True, partial_rotary_factor=0.5,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                               "mrope_section": [4, 6, 6]},
              vocab_size=4096),
    vision=dict(depth=2, hidden_size=64, num_heads=4, intermediate_size=128,
                out_hidden_size=256, patch_size=14, image_size=112, spatial_merge_size=2,
                temporal_patch_size=2),
    image_pixels=(12544, 9633792),
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_processor(image_pixels):
    """The embedded tokenizer/template with the real image pixel budget."""
    from transformers import Glm4vImageProcessor

    from studio.engine.infer.tiny import build_processor as tiny_processor

    proc = tiny_processor()
    proc.image_processor = Glm4vImageProcessor(
        size={"shortest_edge": image_pixels[0], "longest_edge": image_pixels[1]},
        patch_size=14, temporal_patch_size=2, merge_size=2,
    )
    return proc


def make_config(sizes, tok):
    from transformers import Glm4vConfig

    ids = tok.convert_tokens_to_ids
    return Glm4vConfig(
        text_config=dict(sizes["text"], pad_token_id=ids("<|endoftext|>"),
                         eos_token_id=ids("<|endoftext|>")),
        vision_config=dict(sizes["vision"]),
        image_token_id=ids("<|image|>"), video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"), image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"), video_end_token_id=ids("<|end_of_video|>"),
        tie_word_embeddings=False,
    )


def build_model(config, device, dtype):
    """Random-weight Glm4vForConditionalGeneration built directly on ``device``."""
    import torch
    from transformers import Glm4vForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):
        model = Glm4vForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval()


def measure_bandwidth(device, gib: float = 4.0) -> float:
    """Device memory bandwidth in GB/s from a large device-to-device copy (read + write)."""
    import torch

    if device == "cpu":
        gib = 0.25
    n = int(gib * 2**30 / 2)
    a = torch.empty(n, dtype=torch.bfloat16, device=device)
    b = torch.empty_like(a)
    for _ in range(2):
        b.copy_(a)
    sync(device)
    reps = 10
    t = time.perf_counter()
    for _ in range(reps):
        b.copy_(a)
    sync(device)
    dt = time.perf_counter() - t
    del a, b
    return 2 * n * 2 * reps / dt / 1e9


def sync(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def image_inputs(proc, device, side=1024):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    msgs = [{"role": "user", "content": [{"type": "image"},
                                         {"type": "text", "text": "Describe this image in detail."}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    return proc(text=[text], images=[img], return_tensors="pt").to(device)


def bench_inference(model, proc, device, new_tokens: int):
    import torch

    inputs = image_inputs(proc, device)
    n_prompt = int(inputs["input_ids"].shape[1])
    n_visual = int((inputs["input_ids"] == model.config.image_token_id).sum())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)  # warm-up
        sync(device)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, do_sample=False)
            sync(device)
            times.append(time.perf_counter() - t)
        prefill = sorted(times)[1]
        t = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False)
        sync(device)
        total = time.perf_counter() - t
    n_new = int(out.shape[1] - n_prompt)
    decode_tps = (n_new - 1) / max(total - prefill, 1e-9)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return dict(prompt_tokens=n_prompt, visual_tokens=n_visual, prefill_s=prefill,
                new_tokens=n_new, decode_tokens_per_s=decode_tps, peak_gib=peak)


def lm_weight_bytes(model) -> int:
    """Bytes of weights read per decoded token: language model + lm_head (vision excluded)."""
    total = 0
    for name, p in model.named_parameters():
        if ".visual." in f".{name}" or name.startswith("model.visual"):
            continue
        if "embed_tokens" in name:  # one row gathered per token, not the whole matrix
            continue
        total += p.numel() * p.element_size()
    return total


def bench_qlora(config, proc, device, seq_len: int):
    """One QLoRA step: save random bf16 weights, reload as NF4, LoRA r=16 on the LM."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import BitsAndBytesConfig, Glm4vForConditionalGeneration

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        t = time.perf_counter()
        m = build_model(config, device, torch.bfloat16)
        m.save_pretrained(tmp, safe_serialization=True)
        del m
        gc.collect()
        torch.cuda.empty_cache()
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True,
                               llm_int8_skip_modules=["visual", "lm_head"])
        model = Glm4vForConditionalGeneration.from_pretrained(
            tmp, quantization_config=q, dtype=torch.bfloat16, device_map={"": 0})
        load_s = time.perf_counter() - t
    target = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_up_proj|down_proj)"
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                             target_modules=target, task_type="CAUSAL_LM"))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs = image_inputs(proc, device)
    ids = inputs["input_ids"]
    pad = max(0, seq_len - ids.shape[1])
    extra = torch.randint(10, 1000, (1, pad), device=device)
    inputs["input_ids"] = torch.cat([ids, extra], 1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(extra)], 1)
    labels = inputs["input_ids"].clone()
    labels[inputs["mm_token_type_ids"] != 0] = -100
    torch.cuda.reset_peak_memory_stats()
    steps = []
    for _ in range(2):  # first step warms kernels up; report the second
        sync(device)
        t = time.perf_counter()
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        steps.append(time.perf_counter() - t)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return dict(seq_len=int(inputs["input_ids"].shape[1]), step_s=steps[-1], first_step_s=steps[0],
                peak_gib=torch.cuda.max_memory_allocated() / 2**30, loss=float(loss),
                trainable_params=trainable, save_random_s=save_s, load_4bit_s=load_s)


def compare_fit(params: int, device) -> dict:
    """Would Base + Thinking both fit resident in bf16? Measured free memory vs weights."""
    import torch

    weights_gib = params * 2 / 2**30
    free, total = torch.cuda.mem_get_info() if device == "cuda" else (0, 0)
    out = dict(one_model_bf16_gib=weights_gib, two_models_bf16_gib=2 * weights_gib,
               device_free_gib=free / 2**30, device_total_gib=total / 2**30)
    try:
        from studio.engine.infer import memplan  # the Compare tab's planner

        out["memplan"] = str(memplan.plan_for_bench(params, params, free)) \
            if hasattr(memplan, "plan_for_bench") else "memplan present (no bench hook)"
    except Exception as e:  # noqa: BLE001 - the planner is optional here
        out["memplan"] = f"unavailable: {type(e).__name__}"
    out["fits_both_resident"] = device == "cuda" and 2 * weights_gib * 1.15 < free / 2**30
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["full", "tiny"], default="full")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=2048, help="QLoRA step sequence length")
    ap.add_argument("--skip-qlora", action="store_true")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.scale == "full" and device != "cuda":
        print("error: --scale full needs an NVIDIA GPU; use --scale tiny to check the script on CPU.")
        return 2
    sizes = FULL if args.scale == "full" else TINY
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    res: dict = dict(date=time.strftime("%Y-%m-%d"), scale=args.scale, device=device,
                     torch=torch.__version__, python=platform.python_version())
    if device == "cuda":
        res["gpu"] = torch.cuda.get_device_name(0)
    import transformers

    res["transformers"] = transformers.__version__
    proc = build_processor(sizes["image_pixels"])
    config = make_config(sizes, proc.tokenizer)

    log("measuring memory bandwidth")
    bw = measure_bandwidth(device)
    res["bandwidth_gb_s"] = bw
    log(f"bandwidth {bw:.0f} GB/s; building the model")
    t = time.perf_counter()
    model = build_model(config, device, dtype)
    res["build_s"] = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters())
    res["params_b"] = params / 1e9
    res["lm_bytes_per_token_gb"] = lm_weight_bytes(model) / 1e9
    log(f"{params / 1e9:.2f} B parameters; inference")
    inf = bench_inference(model, proc, device, args.new_tokens)
    res["inference"] = inf
    bound = bw / res["lm_bytes_per_token_gb"]
    res["decode_bound_tokens_per_s"] = bound
    res["decode_pct_of_bandwidth_bound"] = 100 * inf["decode_tokens_per_s"] / bound
    log(f"decode {inf['decode_tokens_per_s']:.1f} tok/s = {res['decode_pct_of_bandwidth_bound']:.0f}% "
        f"of bound; prefill {inf['prefill_s'] * 1000:.0f} ms for {inf['prompt_tokens']} tokens")
    res["compare_fit"] = compare_fit(params, device)
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    if not args.skip_qlora and device == "cuda":
        log("QLoRA step")
        try:
            res["qlora"] = bench_qlora(config, proc, device, args.seq_len)
        except Exception as e:  # noqa: BLE001 - report, keep the other numbers
            res["qlora"] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
    print_table(res)
    return 0


def print_table(r: dict) -> None:
    inf = r["inference"]
    rows = [
        ("card", r.get("gpu", r["device"])),
        ("parameters", f"{r['params_b']:.2f} B"),
        ("prefill (1024×1024 image + question)", f"{inf['prefill_s'] * 1000:.0f} ms, {inf['prompt_tokens']} tokens"),
        ("decode, batch 1", f"{inf['decode_tokens_per_s']:.1f} tok/s"),
        ("% of bandwidth bound", f"{r['decode_pct_of_bandwidth_bound']:.0f} % "
                                 f"({r['lm_bytes_per_token_gb']:.1f} GB/token, {r['bandwidth_gb_s']:.0f} GB/s)"),
        ("peak memory, inference", f"{inf['peak_gib']:.1f} GiB" if inf["peak_gib"] else "n/a"),
    ]
    q = r.get("qlora")
    if q and "error" not in q:
        rows += [("QLoRA step (NF4, r=16)", f"{q['step_s']:.2f} s at {q['seq_len']} tokens"),
                 ("peak memory, QLoRA", f"{q['peak_gib']:.1f} GiB")]
    elif q:
        rows.append(("QLoRA step", q["error"][:80]))
    cf = r["compare_fit"]
    rows.append(("Base + Thinking resident (bf16)",
                 f"{'fits' if cf['fits_both_resident'] else 'does not fit'}: {cf['two_models_bf16_gib']:.1f} GiB "
                 f"of {cf['device_free_gib']:.1f} GiB free"))
    print("\n| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    raise SystemExit(main())
