"""The training loop: one process or several (DDP), CPU or CUDA.

Per step (detectron2's ``SimpleTrainer`` order): read a batch, forward with the targets
(autocast to float16 on CUDA when ``solver.amp``), sum the weighted losses, backward (through
a ``GradScaler`` with AMP), optionally clip the gradient norm, ``optimizer.step()``, then
``scheduler.step()``. A non-finite loss stops the run with the step number.

Every ``solver.log_period`` steps rank 0 appends ``{"step", "lr", "loss", "loss_sem_seg",
"loss_center", "loss_offset", "seconds_per_step"}`` (losses averaged over ranks) to
``metrics.jsonl``; every ``eval.period`` steps and at the end, all ranks evaluate their share
of the val records, the statistics are merged, and rank 0 appends ``{"step", "eval": {"pq",
"sq", "rq", "pq_th", "pq_st", "miou"}}``. Checkpoints every ``solver.checkpoint_period`` steps
and at the end (rank 0 writes; every rank's RNG state is kept). ``resume=True`` continues from
the run's newest checkpoint: model, optimizer, scheduler, AMP scaler, RNG states and the data
position, so a resumed run ends in the same state as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from panseg import fsio
from panseg.datasets.info import DatasetInfo
from panseg.engine import distributed as D
from panseg.engine.checkpoint import (
    last_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from panseg.engine.config import TrainConfig, model_config
from panseg.engine.data import build_eval_dataset, build_train_loader
from panseg.engine.inference import Predictor, evaluate, headline
from panseg.engine.optim import build_optimizer, build_scheduler
from panseg.engine.run import METRICS_NAME, write_run_files


def build_model_for(cfg: TrainConfig, info: DatasetInfo) -> torch.nn.Module:
    """The config's model, checked against the records' dataset facts, with init weights."""
    from panseg.models.build import build_model_from_config

    mcfg = model_config(cfg)
    if mcfg.num_classes != info.num_classes:
        raise ValueError(
            f"model.num_classes is {mcfg.num_classes} but the records of {info.name!r} have "
            f"{info.num_classes} classes (set model.num_classes={info.num_classes})"
        )
    if mcfg.ignore_label != info.ignore_label:
        raise ValueError(
            f"model.ignore_label is {mcfg.ignore_label} but {info.name!r} uses "
            f"{info.ignore_label} (set model.ignore_label={info.ignore_label})"
        )
    model = build_model_from_config(mcfg)
    init = cfg.init
    if init.backbone_weights:
        from panseg.models.weights import load_backbone_weights, read_checkpoint

        load_backbone_weights(model.backbone, read_checkpoint(init.backbone_weights),
                              init.backbone_format)
    if init.weights:
        from panseg.models.weights import load_detectron2_weights, read_checkpoint

        load_detectron2_weights(model, read_checkpoint(init.weights))
    return model


class MetricsLog:
    """Appends JSON lines to RUN_DIR/metrics.jsonl (rank 0) and scalars to TensorBoard."""

    def __init__(self, run_dir: str, enabled: bool, tensorboard: bool = True) -> None:
        self.path = fsio.join(run_dir, METRICS_NAME)
        self.enabled = enabled
        self.tb = None
        if enabled and tensorboard and not fsio.is_url(run_dir):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(fsio.join(run_dir, "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop lines of steps after ``step`` (left by a run that died after its checkpoint)."""
        if not self.enabled or not fsio.exists(self.path):
            return
        lines = fsio.read_bytes(self.path).decode("utf-8").splitlines()
        kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
        fsio.write_bytes_atomic(self.path, "".join(ln + "\n" for ln in kept).encode("utf-8"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(record) + "\n"
        if fsio.is_url(self.path):
            old = fsio.read_bytes(self.path) if fsio.exists(self.path) else b""
            fsio.write_bytes_atomic(self.path, old + line.encode("utf-8"))
        else:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        if self.tb is not None:
            step = record["step"]
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.tb.add_scalar(f"train/{key}", value, step)
            for key, value in (record.get("eval") or {}).items():
                if value is not None:
                    self.tb.add_scalar(f"eval/{key}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _reduce_mean(values: dict[str, float], world_size: int) -> dict[str, float]:
    if world_size == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world_size for k, v in zip(keys, t.tolist(), strict=True)}


def train(
    cfg: TrainConfig,
    run_dir: str,
    *,
    dist_info: D.DistInfo | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; returns ``{"step", "eval" (last headline or None),
    "checkpoint", "seconds", "model"}``. ``stop_after`` stops (with a checkpoint) after that many
    steps of this call, as an interruption would (tests)."""
    from tqdm import tqdm

    di = dist_info or D.DistInfo()
    s, ev = cfg.solver, cfg.eval
    if s.batch_size % di.world_size:
        raise ValueError(
            f"solver.batch_size {s.batch_size} is not divisible by {di.world_size} processes"
        )
    local_batch = s.batch_size // di.world_size
    device = torch.device(di.device)
    start = time.time()

    state = None
    if resume:
        path = last_checkpoint(run_dir)
        if path is None:
            log(f"no checkpoint in {run_dir}: starting from scratch")
        else:
            state = load_checkpoint(path)
            log(f"resuming from {path} (step {int(state['step'])})")
            saved_world = int(state.get("world_size", di.world_size))
            if saved_world != di.world_size:
                log(f"warning: the checkpoint was written by {saved_world} processes, this run "
                    f"has {di.world_size}: training continues, but the data order is not the "
                    "one an uninterrupted run would have seen")
    step = int(state["step"]) if state else 0

    loader, info = build_train_loader(
        cfg.data, batch_size=local_batch, seed=s.seed, rank=di.rank, world_size=di.world_size,
        start_sample=step * local_batch,
    )
    torch.manual_seed(s.seed)  # identical initial weights on every rank
    model = build_model_for(cfg, info)
    core = model
    if s.sync_bn:
        model = D.convert_sync_bn(model, di)
        core = model
    model.to(device)
    optimizer = build_optimizer(core, s)
    scheduler = build_scheduler(optimizer, s)
    use_amp = s.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if state is not None:
        core.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        set_rng_state(rngs[di.rank] if di.rank < len(rngs) else rngs[0])
    else:
        torch.manual_seed(s.seed + di.rank)  # per-rank dropout
    if di.distributed:
        model = DistributedDataParallel(
            model, device_ids=[di.local_rank] if device.type == "cuda" else None
        )
    if di.is_main:
        write_run_files(run_dir, cfg, info)
    metrics = MetricsLog(run_dir, di.is_main)
    metrics.truncate_after(step)
    eval_set = None
    if ev.period >= 0:  # fail now, not after hours of training, if the val split is missing
        eval_set = build_eval_dataset(cfg.data.root, cfg.data.val_split, rank=di.rank,
                                      world_size=di.world_size)

    def run_eval() -> dict[str, Any]:
        D.sync_buffers(core)
        predictor = Predictor(core, info, ev, di.device)
        summary = evaluate(predictor, eval_set, max_images=ev.max_images,
                           progress=progress and di.is_main, merge=D.merge_evaluator)
        return headline(summary)

    def checkpoint() -> str | None:
        D.sync_buffers(core)
        rngs = D.all_gather(rng_state())
        path = None
        if di.is_main:
            path = save_checkpoint(run_dir, {
                "model": core.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "samples": step * local_batch, "rng": rngs,
                "world_size": di.world_size,
                "config": cfg.to_dict(), "dataset": info.to_dict(),
            }, keep=s.keep_checkpoints)
        D.barrier()
        return path

    model.train()
    bar = tqdm(total=s.max_iter, initial=step, desc="train", unit="it",
               disable=not (progress and di.is_main), dynamic_ncols=True)
    last_eval, ckpt_path, steps_here = None, None, 0
    window: dict[str, float] = {}
    tick = time.time()
    batches = iter(loader)
    while step < s.max_iter:
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True)
        targets = {k: v.to(device, non_blocking=True) for k, v in batch["targets"].items()}
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            losses = model(core.normalize(images), targets)
        loss = sum(losses.values())
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(
                f"loss became {float(loss)} at step {step + 1}: "
                + ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if s.clip_grad_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(core.parameters(), s.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        step += 1
        steps_here += 1
        for k, v in {"loss": loss, **losses}.items():
            window[k] = window.get(k, 0.0) + float(v.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{lr:.2e}")
        done = step == s.max_iter or (stop_after is not None and steps_here >= stop_after)
        if step % s.log_period == 0 or done:
            n = s.log_period if step % s.log_period == 0 else (step % s.log_period or 1)
            avg = _reduce_mean({k: v / n for k, v in window.items()}, di.world_size)
            now = time.time()
            metrics.write({"step": step, "lr": lr, **avg,
                           "seconds_per_step": (now - tick) / n})
            window, tick = {}, now
        if (ev.period > 0 and step % ev.period == 0) or (step == s.max_iter and ev.period >= 0):
            last_eval = run_eval()
            metrics.write({"step": step, "eval": last_eval})
            if di.is_main:
                bar.write(f"step {step}: " + "  ".join(
                    f"{k.upper()} {v:.1f}" for k, v in last_eval.items() if v is not None))
            model.train()
        if (s.checkpoint_period and step % s.checkpoint_period == 0) or done:
            ckpt_path = checkpoint()
        if done:
            break
    bar.close()
    metrics.close()
    return {"step": step, "eval": last_eval, "checkpoint": ckpt_path,
            "seconds": time.time() - start, "model": core}
