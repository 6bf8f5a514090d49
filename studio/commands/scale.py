"""Write accelerate/DeepSpeed launch files for a run, or print the vLLM serve command."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run folder (runs/<id>) holding config.yaml")
    p.add_argument("--kind", choices=["sft", "rl"], default=None,
                   help="run kind (default: read from the run folder name)")
    p.add_argument("--strategy", choices=["ddp", "fsdp", "zero2", "zero3"], default="ddp")
    p.add_argument("--gpus", type=int, default=8, help="GPUs per node (with --cpu: CPU processes per node)")
    p.add_argument("--cpu", action="store_true",
                   help="train as CPU processes with gloo (launch.sh's STUDIO_CPU=0 switches back to GPUs); "
                        "not for ZeRO")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--main-ip", default="MAIN_NODE_IP", help="main node address (multi-node)")
    p.add_argument("--vllm", metavar="MODEL_DIR", default=None,
                   help="print the vLLM serve command for a merged export instead")
    p.add_argument("--tp", type=int, default=1, help="tensor parallel size for --vllm")


def run(args: argparse.Namespace) -> int:
    from studio.engine.train import scale
    from studio.errors import ConfigError

    if args.vllm:
        folder = Path(args.vllm)
        if not (folder / "config.json").is_file() and (args.vllm.startswith((".", "/", "~")) or folder.exists()
                                                       or args.vllm.endswith("/")
                                                       or args.vllm.count("/") != 1):
            raise ConfigError(f"{args.vllm} is not a model folder (no config.json); export one first with "
                              f"`studio export --adapter runs/<id>/adapter --out {args.vllm}`.")
        print(shlex.join(scale.vllm_serve_args(args.vllm, tensor_parallel=args.tp)))
        return 0
    if not args.run:
        raise ConfigError("Name a run folder (runs/<id>) or pass --vllm MODEL_DIR.")
    kind = args.kind or ("rl" if "-rl-" in Path(args.run).name else "sft")
    plan = scale.write_launch(args.run, kind, args.strategy, args.gpus, args.nodes, args.main_ip, cpu=args.cpu)
    print(f"wrote {plan.accelerate_config}" + (f" and {plan.deepspeed_config}" if plan.deepspeed_config else ""))
    where = "CPU processes (gloo)" if args.cpu else "GPUs (NCCL)"
    print(f"{args.gpus * args.nodes} {where}, {args.strategy}; global batch = per-device batch × "
          f"{args.gpus * args.nodes} processes × gradient accumulation")
    print(f"with RUN={shlex.quote(str(plan.script.parent.parent.resolve()))} (launch.sh sets it itself):")
    print(f"single node:  {plan.single_node}")
    print(f"multi-node:   NODE_RANK=<0..{args.nodes - 1}> {plan.multi_node}")
    print(f"or: bash {plan.script}")
    print("The SFT/RL tab's Start and Resume of this run now run launch.sh; delete launch/ to train it "
          "in one process again.")
    return 0
