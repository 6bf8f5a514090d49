"""Scale a run out: ready ``accelerate launch`` files for many GPUs, and vLLM serving.

A run folder already holds ``config.yaml`` for ``studio sft|rl --config``; this module
writes beside it, under ``<run>/launch/``:

* ``accelerate_config.yaml`` — DDP, FSDP (full shard, transformer-layer wrap), or
  DeepSpeed ZeRO-2 / ZeRO-3 (then also ``ds_config.json`` with ``"auto"`` values that the
  HF Trainer integration fills in from the run's own settings);
* ``launch.sh`` — the single-node command and the per-node multi-node command.

The entry is the same ``studio <kind> --config …`` the UI runs, so a workshop run and a
cluster run differ only in the launcher. Every process trains; only the main one writes the
run folder (:mod:`studio.engine.train.distributed`). The same files run on GPUs (NCCL) or —
written with ``cpu=True``, or run with ``STUDIO_CPU=1`` — as CPU processes with gloo, which is
how the multi-process paths are tested on a laptop. Once a run folder has ``launch/launch.sh``,
the SFT/RL tabs' Start and Resume run it (:meth:`studio.engine.train.jobs.JobManager.command_for`).
Formats: accelerate's config file (``accelerate config`` docs) and DeepSpeed's JSON (HF
"DeepSpeed integration" docs).
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
                      ds_config_file: str | None = None, cpu: bool = False) -> dict:
    """The mapping ``accelerate launch --config_file`` reads.

    ``ddp`` and ``fsdp`` with more than one process are accelerate's ``MULTI_GPU``/``FSDP``
    types, which start the processes with ``torchrun``; each process then trains on its GPU
    with NCCL, or — on a machine without CUDA, or with ``STUDIO_CPU=1`` (see
    :func:`write_launch`) — on the CPU with gloo (accelerate's ``PartialState`` picks the
    backend from the device the run trains on). accelerate's own ``use_cpu``/``--cpu`` is not
    used: it starts a single process (or needs MPI). ``mixed_precision`` is ``no``: the run's
    config chooses its precision (bf16 on GPUs that have it), as in a one-process run.

    Args:
        strategy: ``ddp`` | ``fsdp`` | ``zero2`` | ``zero3``.
        gpus_per_node: processes on each machine (>= 1): GPUs, or CPU processes with ``cpu``.
        nodes: machines (>= 1). ``machine_rank``/``main_process_ip`` are passed on the
            command line per node, so one file serves every node.
        cpu: the launch is meant for CPU processes (refused for FSDP and ZeRO: :data:`GPU_ONLY`).
    Raises:
        ConfigError: unknown strategy, non-positive counts, FSDP or ZeRO on the CPU.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"`strategy` must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    if gpus_per_node < 1 or nodes < 1:
        raise ConfigError("`gpus` and `nodes` must be at least 1.")
    if cpu and strategy in GPU_ONLY:
        raise ConfigError(GPU_ONLY[strategy])
    processes = gpus_per_node * nodes
    cfg: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "no",
        "num_machines": nodes,
        "num_processes": processes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        "gpu_ids": "all",
    }
    if strategy == "ddp":
        cfg["distributed_type"] = "MULTI_GPU" if processes > 1 else "NO"
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
#: Seconds ``torchrun`` gives the processes to save a checkpoint after a stop (SIGINT/SIGTERM)
#: before it kills them (``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``; launch.sh keeps one already set).
SHUTDOWN_TIMEOUT_S = 120
#: Strategies that need GPU processes, and why. accelerate 1.16 turns FSDP and DeepSpeed on only
#: for GPU-type process groups (``AcceleratorState``: FSDP only under MULTI_GPU/…, DeepSpeed
#: ``and not cpu``); CPU processes (MULTI_CPU, gloo) would silently train plain DDP instead.
GPU_ONLY = {
    "fsdp": "FSDP runs on GPU processes only here: accelerate 1.16 applies FSDP only to GPU process groups "
            "(torch's FSDP itself can shard on CPU), so CPU processes would silently train plain DDP instead. "
            "On the CPU use --strategy ddp, e.g. "
            "`studio scale runs/<id> --strategy ddp --gpus 2 --cpu`.",
    "zero2": "ZeRO (DeepSpeed) runs on NVIDIA GPUs only; on the CPU use --strategy ddp with --cpu, e.g. "
             "`studio scale runs/<id> --strategy ddp --gpus 2 --cpu`.",
}
GPU_ONLY["zero3"] = ZERO_NEEDS_GPUS = GPU_ONLY["zero2"]


def launch_script(kind: str, strategy: str, gpus_per_node: int, nodes: int, cpu: bool, single: str,
                  multi: str) -> str:
    """The text of ``launch.sh``: finds the run folder, applies the CPU switch, and ``exec``s
    the launcher so a stop signal reaches it (torchrun forwards it to every process) and its
    exit code — non-zero when any process failed — is the script's."""
    gpu_only = strategy in GPU_ONLY
    where = ("CPU processes (gloo)" if cpu else "GPU(s) (NCCL)" if gpu_only
             else "GPU(s) (NCCL; gloo on a machine without CUDA)")
    if gpu_only:  # single quotes: the message's `…` must not run
        switch = f"if [ \"${{STUDIO_CPU:-0}}\" = \"1\" ]; then echo {shlex.quote(GPU_ONLY[strategy])} >&2; exit 2; fi"
    else:
        switch = f'if [ "${{STUDIO_CPU:-{int(cpu)}}}" = "1" ]; then export CUDA_VISIBLE_DEVICES=""; fi'
    lines = [
        "#!/usr/bin/env bash",
        f"# {strategy.upper()} launch of this {kind} run: {gpus_per_node} process(es) per node x {nodes} node(s), "
        f"on {where}.",
        "# Single node:",
        "#   bash launch.sh            (arguments go to the trainer, e.g. --resume)",
        "# Multi-node: run on every node with NODE_RANK=0..N-1 and the main node's IP:",
        "#   NODE_RANK=0 MULTI=1 bash launch.sh   (then NODE_RANK=1 … on the others)",
        *([] if gpu_only else [f"# STUDIO_CPU=1 trains on the CPU (gloo) even where GPUs exist, STUDIO_CPU=0 on "
                           f"the GPUs; default {int(cpu)}."]),
        f"# The run folder is ${RUN_DIR_VAR} if set, else the folder above this script; MAIN_PORT sets",
        "# the rendezvous port (default 29500).",
        "set -euo pipefail",
        f'RUN="${{{RUN_DIR_VAR}:-$(cd "$(dirname "${{BASH_SOURCE[0]}}")/.." && pwd)}}"',
        switch,
        f'export TORCH_ELASTIC_SHUTDOWN_TIMEOUT="${{TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-{SHUTDOWN_TIMEOUT_S}}}"',
        'if [ -z "${ACCELERATE:-}" ]; then',
        '  if command -v accelerate >/dev/null; then ACCELERATE=accelerate; '
        'else ACCELERATE="${PYTHON:-python3} -m accelerate.commands.accelerate_cli"; fi',
        "fi",
        'if [ "${MULTI:-0}" = "1" ]; then',
        f'  exec {multi} "$@"',
        "else",
        f'  exec {single} "$@"',
        "fi",
    ]
    return "\n".join(lines) + "\n"


def write_launch(run_dir: str | Path, kind: str, strategy: str = "ddp", gpus_per_node: int = 8,
                 nodes: int = 1, main_ip: str = "MAIN_NODE_IP", port: int = 29500, cpu: bool = False) -> LaunchPlan:
    """Write ``<run>/launch/`` files for ``studio <kind> --config <run>/config.yaml``.

    No absolute path of this machine is written: ``launch.sh`` finds the run folder at run
    time (``$STUDIO_RUN_DIR``, else the folder above the script), and the accelerate file
    names the DeepSpeed JSON relative to the run folder (``launch/ds_config.json``;
    ``launch.sh`` passes it as an absolute path built at run time). So the run folder can be
    copied to a cluster and launched there. Files of an earlier strategy are removed.

    ``cpu``: the processes train on the CPU with gloo (``launch.sh`` hides the GPUs unless
    ``STUDIO_CPU=0``); without it they use the GPUs with NCCL, or the CPU where there is no
    CUDA. ``gpus_per_node`` is then the number of CPU processes per node.

    Raises:
        ConfigError: no ``config.yaml`` in the run folder, unknown kind or strategy, FSDP or ZeRO
            with ``cpu``, RL with a strategy that shards the weights (fsdp, zero3).
    """
    run = Path(run_dir)
    if kind not in ("sft", "rl"):
        raise ConfigError(f"`kind` must be sft or rl, got {kind!r}.")
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"{run} has no config.yaml; export a run folder made by the SFT or RL tab.")
    from studio.engine.train.distributed import RL_NEEDS_WHOLE_MODEL, SHARDED

    if kind == "rl" and strategy in SHARDED:
        raise ConfigError(RL_NEEDS_WHOLE_MODEL)
    cfg = accelerate_config(strategy, gpus_per_node, nodes, cpu=cpu,
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
    acc = f'accelerate launch --config_file "$RUN/launch/accelerate_config.yaml"{ds_arg}'
    single = f'{acc} --main_process_port "${{MAIN_PORT:-{port}}}" {entry}'
    multi = (f"{acc} --num_machines {nodes} --machine_rank $NODE_RANK --main_process_ip {shlex.quote(main_ip)} "
             f'--main_process_port "${{MAIN_PORT:-{port}}}" {entry}')
    script = out / "launch.sh"
    script.write_text(launch_script(kind, strategy, gpus_per_node, nodes, cpu,
                                    single.replace("accelerate launch", "$ACCELERATE launch", 1),
                                    multi.replace("accelerate launch", "$ACCELERATE launch", 1)))
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
