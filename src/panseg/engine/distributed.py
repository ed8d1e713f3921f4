"""Several processes (torchrun, DDP): process-group set-up, SyncBN, gathering evaluator state.

``torchrun --nproc_per_node N -m panseg.cli.main train ...`` (or ``panseg train`` under
``python -m torch.distributed.run``) starts N processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; the CLI passes that environment to
:func:`setup` (library code reads no environment variables itself). The backend is NCCL on
CUDA and gloo on CPU. Every process trains on ``batch_size / world_size`` samples per step;
DDP averages the gradients, so a step equals one step on the global batch (except BatchNorm
statistics, which are per process unless ``solver.sync_bn`` converts them to SyncBN on CUDA).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process: ``rank`` of ``world_size``, ``local_rank`` on its node, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def choose_device(preference: str, local_rank: int = 0) -> str:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: CUDA is not available on this machine")
        return f"cuda:{local_rank}"
    if preference != "cpu":
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    return "cpu"


def setup(env: Mapping[str, str], device: str = "auto") -> DistInfo:
    """Join the process group that torchrun's environment ``env`` describes (no-op when
    ``WORLD_SIZE`` is absent or 1) and pick this process's device."""
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    dev = choose_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.startswith("cuda") else "gloo"
        if dev.startswith("cuda"):
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def convert_sync_bn(model: nn.Module, info: DistInfo) -> nn.Module:
    """BatchNorm -> SyncBatchNorm when training on several CUDA processes; unchanged
    otherwise (SyncBN needs CUDA tensors and a process group)."""
    if info.distributed and info.device.startswith("cuda"):
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def all_gather(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` without a group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def merge_evaluator(evaluator: Any) -> Any:
    """Merge every process's :class:`~panseg.evaluation.PanopticEvaluator` statistics into a
    new evaluator (same on every rank); the input is left unchanged."""
    from panseg.evaluation.evaluator import PanopticEvaluator

    states = all_gather(evaluator.state_dict())
    merged = PanopticEvaluator(evaluator.info, semantic=evaluator.semantic)
    for state in states:
        merged.merge(state)
    return merged


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every process. DDP does this at the
    start of each forward; doing it before evaluating or saving makes every rank hold the
    model that the checkpoint holds."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for buf in model.buffers():
        dist.broadcast(buf, 0)
