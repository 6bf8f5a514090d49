"""Rank-awareness for multi-process training: who writes the run folder, and the few collectives
the SFT and RL code needs.

``studio scale RUN --strategy ddp|fsdp --gpus N`` writes a launch (``accelerate launch`` →
``torchrun``) that starts N copies of ``studio sft|rl --config RUN/config.yaml``. Every copy
trains; exactly one — rank 0, the *main process* — writes the run folder (``config.yaml``,
``status.json``, ``metrics.jsonl``, ``rollouts.jsonl``, ``train.log``, checkpoints' extras,
the final ``adapter/`` or ``model/``). The others keep quiet: their stdout goes nowhere
(:func:`quiet_replicas`; stderr stays, so a crash is still seen).

Rank and world size come from ``torch.distributed`` once it is initialised, else from the
variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), so code that runs
before the process group exists (argument parsing, the run-status file) already knows them.
Without those variables everything here is the single-process identity: rank 0 of 1,
collectives return their input. Backend: NCCL on CUDA, gloo on CPU (torch.distributed docs,
"Backends"); accelerate's ``PartialState`` picks it, :func:`init` only starts it early with
the run's timeout (:data:`TIMEOUT_VAR`).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence, TypeVar

from studio.errors import ConfigError

T = TypeVar("T")

#: Seconds a collective may wait for the other processes before it fails (gloo and NCCL):
#: a process stuck or gone ends the run instead of hanging it. ``torchrun`` itself stops the
#: other processes at once when one dies; this covers a process that hangs without dying.
TIMEOUT_VAR = "STUDIO_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 900
#: ``launch.sh``'s switch: ``STUDIO_CPU=1`` runs the processes on the CPU (gloo) even where GPUs exist.
CPU_VAR = "STUDIO_CPU"
#: Strategies that shard the weights themselves: no process holds the whole model, so one
#: process cannot generate alone (RL rollouts, SFT's skill evaluation) and saving gathers first.
SHARDED = ("fsdp", "zero3")
RL_NEEDS_WHOLE_MODEL = ("RL runs with --strategy ddp or zero2: every process generates its own rollouts with the "
                        "whole model, which fsdp and zero3 shard across processes. Write the launch again with "
                        "`studio scale runs/<id> --strategy ddp`.")


def _dist():
    """``torch.distributed`` when it is initialised, else None (torch is imported only then)."""
    import sys

    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    d = _dist()
    return d.get_rank() if d else int(os.environ.get("RANK", 0) or 0)


def world_size() -> int:
    """How many processes train together (1 when not distributed)."""
    d = _dist()
    return d.get_world_size() if d else int(os.environ.get("WORLD_SIZE", 1) or 1)


def local_rank() -> int:
    """This process's rank on its machine (its GPU index under ``torchrun``)."""
    return int(os.environ.get("LOCAL_RANK", 0) or 0)


def is_distributed() -> bool:
    """True when more than one process trains together."""
    return world_size() > 1


def is_main_process() -> bool:
    """True in the process that writes the run folder (global rank 0)."""
    return rank() == 0


def main_only(fn: Callable[..., T]) -> Callable[..., T | None]:
    """``fn`` wrapped to run in the main process only (elsewhere it returns None): for
    loggers and file writers.

    >>> main_only(lambda x: x + 1)(1)
    2
    """

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        return fn(*a, **kw) if is_main_process() else None

    return wrapper


def strategy() -> str | None:
    """``ddp`` / ``fsdp`` / ``zero2`` / ``zero3`` of this launch (read from the variables
    ``accelerate launch`` sets), None for a single process."""
    if not is_distributed():
        return None
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "zero" + os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    return "ddp"


def describe() -> dict[str, Any]:
    """What ``status.json`` records about the launch: ``processes``, ``strategy``,
    ``backend`` (``nccl``/``gloo``, None for one process) and ``nodes``."""
    n = world_size()
    if n <= 1:
        return {"processes": 1, "strategy": None, "backend": None, "nodes": 1}
    d = _dist()
    if d is not None:
        backend = str(d.get_backend())
    else:
        import torch

        backend = "nccl" if torch.cuda.is_available() else "gloo"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", n) or n)
    return {"processes": n, "strategy": strategy(), "backend": backend, "nodes": max(1, n // max(1, local))}


def timeout_s() -> int:
    """The collectives' timeout in seconds (:data:`TIMEOUT_VAR`, default 900).

    Raises:
        ConfigError: the variable is not a positive whole number.
    """
    raw = os.environ.get(TIMEOUT_VAR, "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        v = int(raw)
    except ValueError:
        v = 0
    if v <= 0:
        raise ConfigError(f"{TIMEOUT_VAR}={raw!r} must be a positive number of seconds, e.g. 900.")
    return v


def init(on_cpu: bool) -> None:
    """Start the process group now (when launched with several processes and not started yet),
    with :func:`timeout_s`: RL grades prompts and SFT writes its data before the Trainer
    would start it. gloo on the CPU, NCCL on CUDA (accelerate's ``PartialState``, the state the
    Trainer then reuses). On CUDA each process first takes GPU ``LOCAL_RANK``.

    Raises:
        ConfigError: more processes on this machine than visible GPUs; an FSDP or ZeRO launch
            on CPU processes (accelerate would silently train plain DDP there).
    """
    if world_size() <= 1 or _dist() is not None:
        return
    from datetime import timedelta

    from accelerate import PartialState

    if on_cpu and strategy() != "ddp":
        from studio.engine.train.scale import GPU_ONLY

        raise ConfigError(GPU_ONLY.get(strategy() or "", "") + " (this machine trains on the CPU: no CUDA GPU, "
                          f"or {CPU_VAR}=1)")
    if not on_cpu:
        import torch

        local_n = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()) or 1)
        if torch.cuda.device_count() < local_n:
            raise ConfigError(
                f"This launch starts {local_n} processes on this machine but it has "
                f"{torch.cuda.device_count()} GPU(s); write the launch again with `studio scale RUN --gpus "
                f"{max(1, torch.cuda.device_count())}`, or run it on the CPU: {CPU_VAR}=1 bash launch.sh.")
        torch.cuda.set_device(local_rank())
    PartialState(cpu=on_cpu, timeout=timedelta(seconds=timeout_s()))


def barrier() -> None:
    """Wait until every process gets here (no-op for one process)."""
    d = _dist()
    if d is not None and d.get_world_size() > 1:
        d.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` for one process."""
    d = _dist()
    if d is None or d.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * d.get_world_size()
    d.all_gather_object(out, obj)
    return out


def sum_all(values: Sequence[float]) -> list[float]:
    """Element-wise sum of ``values`` over every process (float64); unchanged for one process."""
    d = _dist()
    if d is None or d.get_world_size() == 1:
        return [float(v) for v in values]
    import torch

    device = "cuda" if d.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    d.all_reduce(t, op=d.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def any_rank(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any of them (a stop asked of one
    process stops all at the same step; they must, or the others wait for it forever)."""
    return sum_all([1.0 if flag else 0.0])[0] > 0


def shard(items: Sequence[T], r: int | None = None, n: int | None = None) -> list[T]:
    """This process's share of ``items``: every ``n``-th item from position ``r``
    (round robin, so shares differ in length by at most one).

    >>> shard([0, 1, 2, 3, 4], 1, 2)
    [1, 3]
    """
    r = rank() if r is None else r
    n = world_size() if n is None else n
    return list(items[r::n])


def full_state_dict(trainer) -> dict | None:
    """The model's whole state dict, gathered on the main process, when FSDP or ZeRO-3 shards
    the model (every process must call this: it is a collective); None otherwise, meaning
    "save the model's own weights" (DDP and ZeRO-2 keep a full copy in every process)."""
    if strategy() not in SHARDED:
        return None
    return trainer.accelerator.get_state_dict(trainer.model)


def main_first(fn: Callable[[], Any]) -> None:
    """Run ``fn`` in the main process while the others wait for it (e.g. data a recipe writes
    on first use, then read by all). Every process must call this."""
    if is_main_process():
        fn()
    barrier()


def save_on_main(trainer, save: Callable[[dict | None], Any]) -> None:
    """Write a result once: ``save(state_dict)`` in the main process, where ``state_dict`` is
    :func:`full_state_dict` of ``trainer``; the other processes wait until it is on disk.
    Every process must call this."""
    state = full_state_dict(trainer)
    main_first(lambda: save(state))


def quiet_replicas() -> None:
    """In every process but the main one, send stdout to nowhere (stderr stays): what the
    run prints — the log lines ``train.log`` keeps — is printed once."""
    import sys

    if not is_main_process():
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process's life


def refuse_new_run_folder(how: str) -> None:
    """A multi-process launch trains one existing run folder; starting a new one (``--data``,
    a recipe) from N processes would make N folders.

    Raises:
        ConfigError: when launched with several processes.
    """
    if is_distributed():
        raise ConfigError(
            f"A multi-process launch trains an existing run folder, not {how}: make the run first "
            f"(`studio sft|rl … --dry-run` prints its folder), then `studio scale runs/<id> …` and "
            f"`bash runs/<id>/launch/launch.sh`.")
