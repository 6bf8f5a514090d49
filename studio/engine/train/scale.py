"""Scale a run out: ready ``accelerate launch`` files for many GPUs, and vLLM serving.

A run folder already holds ``config.yaml`` for ``studio sft|rl --config``; this module
writes beside it, under ``<run>/launch/``:

* ``accelerate_config.yaml`` — DDP, FSDP (full shard, transformer-layer wrap), or
  DeepSpeed ZeRO-2 / ZeRO-3 (then also ``ds_config.json`` with ``"auto"`` values that the
  HF Trainer integration fills in from the run's own settings);
* ``launch.sh`` — the single-node command and the per-node multi-node command.

The entry is the same ``studio <kind> --config …`` the UI runs, so a workshop run and a
cluster run differ only in the launcher. Formats: accelerate's config file
(``accelerate config`` docs) and DeepSpeed's JSON (HF "DeepSpeed integration" docs).
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from studio.errors import ConfigError

STRATEGIES = ("ddp", "fsdp", "zero2", "zero3")
#: Decoder layer classes FSDP wraps one by one (language model and vision tower).
FSDP_WRAP = "Glm4vTextDecoderLayer,Glm4vVisionBlock"


@dataclass
class LaunchPlan:
    """What :func:`write_launch` produced: file paths and the commands to run."""

    accelerate_config: Path
    deepspeed_config: Path | None
    script: Path
    single_node: str
    multi_node: str


def deepspeed_config(stage: int) -> dict:
    """DeepSpeed ZeRO config for the HF Trainer integration (``auto`` → Trainer values).

    Raises:
        ConfigError: stage not 2 or 3.
    """
    if stage not in (2, 3):
        raise ConfigError(f"`strategy` ZeRO stage must be 2 or 3, got {stage}.")
    zero: dict = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
                  "reduce_bucket_size": "auto"}
    if stage == 3:
        zero.update({"stage3_prefetch_bucket_size": "auto",
                     "stage3_param_persistence_threshold": "auto",
                     "stage3_gather_16bit_weights_on_model_save": True})
    else:
        zero.update({"allgather_partitions": True, "reduce_scatter": True})
    return {
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "wall_clock_breakdown": False,
    }


def accelerate_config(strategy: str, gpus_per_node: int, nodes: int = 1,
                      mixed_precision: str = "bf16", ds_config_file: str | None = None) -> dict:
    """The mapping ``accelerate launch --config_file`` reads.

    Args:
        strategy: ``ddp`` | ``fsdp`` | ``zero2`` | ``zero3``.
        gpus_per_node: GPUs on each machine (>= 1).
        nodes: machines (>= 1). ``machine_rank``/``main_process_ip`` are passed on the
            command line per node, so one file serves every node.
        mixed_precision: ``bf16`` (GPUs from Ampere on) or ``no``.
    Raises:
        ConfigError: unknown strategy, non-positive counts.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"`strategy` must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    if gpus_per_node < 1 or nodes < 1:
        raise ConfigError("`gpus` and `nodes` must be at least 1.")
    cfg: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": mixed_precision,
        "num_machines": nodes,
        "num_processes": gpus_per_node * nodes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        "gpu_ids": "all",
    }
    if strategy == "ddp":
        cfg["distributed_type"] = "MULTI_GPU" if gpus_per_node * nodes > 1 else "NO"
    elif strategy == "fsdp":
        cfg["distributed_type"] = "FSDP"
        cfg["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": FSDP_WRAP,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            "fsdp_activation_checkpointing": False,
        }
    else:
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {"deepspeed_config_file": ds_config_file or "ds_config.json",
                                   "zero3_init_flag": strategy == "zero3"}
        cfg.pop("mixed_precision")  # DeepSpeed takes precision from its own JSON
    return cfg


#: Files :func:`write_launch` may write under ``<run>/launch/``; the ones a new strategy
#: does not write are removed, so a switch (zero3 → ddp) leaves nothing stale behind.
LAUNCH_FILES = ("accelerate_config.yaml", "ds_config.json", "launch.sh")
#: How launch.sh finds the run folder: this variable, else the folder above the script.
RUN_DIR_VAR = "STUDIO_RUN_DIR"


def write_launch(run_dir: str | Path, kind: str, strategy: str = "ddp", gpus_per_node: int = 8,
                 nodes: int = 1, main_ip: str = "MAIN_NODE_IP", port: int = 29500) -> LaunchPlan:
    """Write ``<run>/launch/`` files for ``studio <kind> --config <run>/config.yaml``.

    No absolute path of this machine is written: ``launch.sh`` finds the run folder at run
    time (``$STUDIO_RUN_DIR``, else the folder above the script), and the accelerate file
    names the DeepSpeed JSON relative to the run folder (``launch/ds_config.json``;
    ``launch.sh`` passes it as an absolute path built at run time). So the run folder can be
    copied to a cluster and launched there. Files of an earlier strategy are removed.

    Raises:
        ConfigError: no ``config.yaml`` in the run folder, unknown kind or strategy.
    """
    run = Path(run_dir)
    if kind not in ("sft", "rl"):
        raise ConfigError(f"`kind` must be sft or rl, got {kind!r}.")
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"{run} has no config.yaml; export a run folder made by the SFT or RL tab.")
    cfg = accelerate_config(strategy, gpus_per_node, nodes,
                            ds_config_file="launch/ds_config.json" if strategy in ("zero2", "zero3") else None)
    out = run / "launch"
    out.mkdir(parents=True, exist_ok=True)
    ds_path = None
    if strategy in ("zero2", "zero3"):
        ds_path = out / "ds_config.json"
        ds_path.write_text(json.dumps(deepspeed_config(int(strategy[-1])), indent=2))
    for name in LAUNCH_FILES:
        if name == "ds_config.json" and ds_path is None:
            (out / name).unlink(missing_ok=True)
    acc_path = out / "accelerate_config.yaml"
    acc_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    ds_arg = ' --deepspeed_config_file "$RUN/launch/ds_config.json"' if ds_path else ""
    entry = f'-m studio {kind} --config "$RUN/config.yaml"'
    single = f'accelerate launch --config_file "$RUN/launch/accelerate_config.yaml"{ds_arg} {entry}'
    multi = (f'accelerate launch --config_file "$RUN/launch/accelerate_config.yaml"{ds_arg} '
             f"--num_machines {nodes} --machine_rank $NODE_RANK --main_process_ip {shlex.quote(main_ip)} "
             f"--main_process_port {port} {entry}")
    script = out / "launch.sh"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f"# {strategy.upper()} launch of this run on {gpus_per_node} GPU(s) x {nodes} node(s).\n"
        "# Single node:\n"
        f"#   bash launch.sh\n"
        "# Multi-node: run on every node with NODE_RANK=0..N-1 and the main node's IP:\n"
        f"#   NODE_RANK=0 MULTI=1 bash launch.sh   (then NODE_RANK=1 … on the others)\n"
        f"# The run folder is ${RUN_DIR_VAR} if set, else the folder above this script.\n"
        "set -euo pipefail\n"
        f'RUN="${{{RUN_DIR_VAR}:-$(cd "$(dirname "${{BASH_SOURCE[0]}}")/.." && pwd)}}"\n'
        'if [ "${MULTI:-0}" = "1" ]; then\n'
        f"  {multi}\n"
        "else\n"
        f"  {single}\n"
        "fi\n"
    )
    script.chmod(0o755)
    return LaunchPlan(acc_path, ds_path, script, single, multi)


#: Context length of the real GLM-4.1V-9B checkpoints (``max_position_embeddings``), used
#: for ``--max-model-len`` when the model folder's config cannot be read (a hub id).
GLM4V_MAX_POSITIONS = 65536


def model_max_len(model_dir: str | os.PathLike) -> int | None:
    """``max_position_embeddings`` from a model folder's ``config.json`` (GLM-4.1V keeps it
    under ``text_config``; other models at the top level), or None when there is none."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for node in (cfg.get("text_config") or {}, cfg):
        v = node.get("max_position_embeddings") if isinstance(node, dict) else None
        if isinstance(v, int) and v > 0:
            return v
    return None


def vllm_serve_args(model_dir: str, *, max_images: int = 10, max_videos: int = 1,
                    max_model_len: int | None = None, tensor_parallel: int = 1,
                    port: int = 8000) -> list[str]:
    """Arguments for ``vllm serve`` on a merged export (not run here; no vLLM on CPU).

    Reasoning is split by vLLM's GLM parser (``--reasoning-parser glm45``, which reads
    ``<think>…</think>``); media limits mirror the Chat tab's per-turn rules.
    ``max_model_len`` defaults to the model's own ``max_position_embeddings``
    (:func:`model_max_len`; vLLM refuses a longer one), else :data:`GLM4V_MAX_POSITIONS`.
    """
    if max_model_len is None:
        max_model_len = model_max_len(model_dir) or GLM4V_MAX_POSITIONS
    return [
        "vllm", "serve", model_dir,
        "--served-model-name", Path(model_dir).name or "glm4v",
        "--reasoning-parser", "glm45",
        "--limit-mm-per-prompt", json.dumps({"image": max_images, "video": max_videos}),
        "--max-model-len", str(max_model_len),
        "--tensor-parallel-size", str(tensor_parallel),
        "--dtype", "bfloat16",
        "--port", str(port),
    ]
