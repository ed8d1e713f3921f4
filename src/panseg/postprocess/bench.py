"""Timing of panseg's post-processing against detectron2's own file or the spec oracle.

Used by ``benchmarks/postprocess.py`` and ``panseg benchmark``. detectron2 is never imported as
a package (it needs torchvision and a build): its ``post_processing.py`` only needs torch, so it
is loaded from a user's checkout with :mod:`importlib`.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from panseg.postprocess.panoptic import get_panoptic_segmentation
from panseg.postprocess.reference import reference_panoptic
from panseg.postprocess.synthetic import SyntheticOutputs, synthetic_outputs

__all__ = [
    "DETECTRON2_FILE",
    "check_equality",
    "PostprocessTiming",
    "load_detectron2_postprocessing",
    "median_ms",
    "time_postprocessing",
]

DETECTRON2_FILE = "projects/Panoptic-DeepLab/panoptic_deeplab/post_processing.py"


def load_detectron2_postprocessing(path: str | Path) -> ModuleType:
    """detectron2's ``post_processing.py`` as a module, from a checkout or the file itself.

    Args:
        path: the detectron2 checkout root, its ``projects/Panoptic-DeepLab`` folder, or the
            ``post_processing.py`` file.

    Raises:
        FileNotFoundError: naming the paths tried.
    """
    root = Path(path).expanduser()
    tried = [root, root / DETECTRON2_FILE, root / "panoptic_deeplab" / "post_processing.py"]
    for candidate in tried:
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location(
                "detectron2_pdl_post_processing", candidate
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if not hasattr(module, "get_panoptic_segmentation"):
                raise FileNotFoundError(f"{candidate} has no get_panoptic_segmentation")
            return module
    raise FileNotFoundError(
        "detectron2's post_processing.py not found; tried " + ", ".join(str(t) for t in tried)
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(
    fn: Callable[[], Any],
    repeat: int,
    device: torch.device,
    warmup: int = 1,
    progress: str | None = None,
) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    runs = range(repeat)
    if progress is not None:
        from tqdm import tqdm

        runs = tqdm(runs, desc=progress, unit="run", leave=False)
    times = []
    for _ in runs:
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _wall_and_cpu_ms(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0


def _interleaved(
    fast: Callable[[], Any],
    repeat: int,
    slow: Callable[[], Any],
    slow_repeat: int,
    device: torch.device,
    slow_name: str,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median (wall ms, CPU ms) of both, fast runs spread between slow ones (same load).

    CPU time is this process's (all its threads); on a shared machine it moves less than wall
    time.
    """
    from tqdm import tqdm

    fast_runs: list[tuple[float, float]] = []
    slow_runs: list[tuple[float, float]] = []
    fast()  # warm-up
    per_round = -(-repeat // max(slow_repeat, 1))
    for i in tqdm(range(max(slow_repeat, 1)), desc=slow_name, unit="run", leave=False):
        for _ in range(min(per_round, repeat - len(fast_runs))):
            fast_runs.append(_wall_and_cpu_ms(fast, device))
        if i < slow_repeat:
            slow_runs.append(_wall_and_cpu_ms(slow, device))

    def medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    return medians(fast_runs), medians(slow_runs)


@dataclass(frozen=True)
class PostprocessTiming:
    """One comparison. ``other`` names what panseg was compared with."""

    height: int
    width: int
    num_centers: int
    thing_fraction: float
    panseg_ms: float
    other: str
    other_ms: float
    equal: bool
    panseg_cpu_ms: float = float("nan")
    other_cpu_ms: float = float("nan")

    @property
    def speedup(self) -> float:
        """Ratio of median wall times."""
        return self.other_ms / self.panseg_ms

    @property
    def cpu_speedup(self) -> float:
        """Ratio of median process CPU times."""
        return self.other_cpu_ms / self.panseg_cpu_ms


def time_postprocessing(
    outputs: SyntheticOutputs | None = None,
    *,
    height: int = 1024,
    width: int = 2048,
    num_classes: int = 19,
    num_things: int = 8,
    num_instances: int = 30,
    nms_kernel: int = 7,
    top_k: int = 200,
    stuff_area: int = 2048,
    label_divisor: int = 1000,
    repeat: int = 5,
    other_repeat: int = 3,
    detectron2: str | Path | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> PostprocessTiming:
    """Median ms of panseg and of detectron2's file (or the oracle) on the same inputs.

    The first (untimed) runs are compared for bit equality; timed runs of panseg are spread
    between those of the slow implementation so that both see the same machine load. Without ``detectron2`` the comparison is the
    slow oracle :func:`panseg.postprocess.reference.reference_panoptic` (CPU only).
    """
    dev = torch.device(device)
    if outputs is None:
        outputs = synthetic_outputs(
            height, width, num_classes, num_things, num_instances, seed=seed
        )
    semantic = outputs.semantic.to(dev)
    center = outputs.center.to(dev)
    offsets = outputs.offsets.to(dev)
    args = (semantic, center, offsets, outputs.thing_ids, label_divisor, stuff_area, -1)
    kwargs = {"threshold": 0.1, "nms_kernel": nms_kernel, "top_k": top_k}

    def ours() -> tuple[torch.Tensor, torch.Tensor]:
        return get_panoptic_segmentation(*args, **kwargs)

    if detectron2 is not None:
        module = load_detectron2_postprocessing(detectron2)
        other_name = "detectron2"

        def other() -> tuple[torch.Tensor, torch.Tensor]:
            return module.get_panoptic_segmentation(*args, **kwargs)
    else:
        other_name = "panseg reference (spec oracle)"
        cpu_args = (outputs.semantic, outputs.center, outputs.offsets, *args[3:])

        def other() -> tuple[torch.Tensor, torch.Tensor]:
            return reference_panoptic(*cpu_args, **kwargs)

    panoptic, found = ours()
    other_panoptic, other_found = other()
    equal = torch.equal(panoptic.cpu(), other_panoptic.cpu()) and torch.equal(
        found.cpu(), other_found.cpu()
    )
    (panseg_ms, panseg_cpu), (other_ms, other_cpu) = _interleaved(
        ours, repeat, other, other_repeat, dev, other_name
    )
    return PostprocessTiming(
        height=semantic.shape[-2],
        width=semantic.shape[-1],
        num_centers=int(found.shape[1]),
        thing_fraction=float(
            torch.isin(semantic, torch.tensor(outputs.thing_ids, device=dev)).float().mean()
        ),
        panseg_ms=panseg_ms,
        other=other_name,
        other_ms=other_ms,
        equal=equal,
        panseg_cpu_ms=panseg_cpu,
        other_cpu_ms=other_cpu,
    )


def check_equality(detectron2: str | Path | None = None, cases: int = 100, seed: int = 0) -> int:
    """Number of mismatches between panseg and detectron2's file (or the oracle).

    Runs small seeded cases: synthetic outputs, quantised heatmaps (plateaus, k-th score ties),
    integer offsets (exact distance ties), float64 offsets, random thing sets and foreground
    masks, NMS 1/3/7/41 and top-k 1/5/200.
    """
    if detectron2 is not None:
        reference = load_detectron2_postprocessing(detectron2).get_panoptic_segmentation
    else:
        reference = reference_panoptic
    mismatches = 0
    for case in range(cases):
        gen = torch.Generator().manual_seed(seed * 100003 + case)

        def draw(low: int, high: int, gen: torch.Generator = gen) -> int:
            return int(torch.randint(low, high, (1,), generator=gen))

        height, width = draw(20, 90), draw(20, 120)
        mask = None
        if case % 3 == 0:
            out = synthetic_outputs(height, width, num_instances=draw(1, 25), seed=case)
            sem, heat, off, things = out.semantic, out.center, out.offsets, out.thing_ids
        else:
            num_classes = draw(2, 8)
            sem = torch.randint(-1, num_classes, (1, height, width), generator=gen)
            heat = torch.rand(1, height, width, generator=gen) ** 3
            if case % 3 == 1:
                heat = torch.round(heat * 7) / 7
            off = torch.randn(2, height, width, generator=gen) * draw(1, 40)
            if case % 5 == 0:
                off = torch.round(off)
            if case % 7 == 0:
                off = off.double()
            things = [c for c in range(num_classes) if draw(0, 2)]
            if case % 4 == 0:
                mask = torch.randint(0, 3, (1, height, width), generator=gen)
        args = (sem, heat, off, things, 1000, draw(0, 60), -1)
        kwargs = {"nms_kernel": (1, 3, 7, 41)[case % 4], "top_k": (1, 5, 200)[case % 3]}
        if kwargs["top_k"] > height * width:
            continue
        ours = get_panoptic_segmentation(*args, foreground_mask=mask, **kwargs)
        theirs = reference(*args, foreground_mask=mask, **kwargs)
        if not (torch.equal(ours[0], theirs[0].long()) and torch.equal(ours[1], theirs[1])):
            mismatches += 1
    return mismatches
