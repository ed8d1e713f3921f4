"""Training throughput of the demo config, and resuming the data stream: panseg's index skip
against the usual way (iterate the DataLoader and discard the consumed batches).

    python benchmarks/train_resume.py            # 96 images of 96×128, resume after 400 samples
    python benchmarks/train_resume.py --quick    # smoke run

1. Steps/s and CPU seconds per step of ``configs/demo_synthetic.yaml`` (ResNet-18 / 4, batch 8)
   on synthetic records, one torch thread.
2. Time until the first batch after resuming at sample K: ``StreamSampler(start=K)`` (index
   arithmetic, nothing read) against reading and discarding K samples (decode, augment, targets)
   as a plain ``DataLoader`` loop must; the first batches are checked to be equal.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from panseg.engine.config import load_config, model_config
    from panseg.engine.data import build_train_loader
    from panseg.engine.demo import prepare_records, shipped_config
    from panseg.engine.optim import build_optimizer
    from panseg.models.build import build_model_from_config

    images, steps, resume_at = (16, 3, 32) if args.quick else (96, 20, 400)
    with tempfile.TemporaryDirectory() as tmp:
        records = prepare_records(tmp, images=images, seed=0, height=96, width=128)
        cfg = load_config(shipped_config("demo_synthetic"), [f"data.root={records}"])
        batch = cfg.solver.batch_size

        def loader(start: int):
            return build_train_loader(cfg.data, batch_size=batch, seed=0, rank=0, world_size=1,
                                      start_sample=start)[0]

        torch.manual_seed(0)
        model = build_model_from_config(model_config(cfg))
        opt = build_optimizer(model, cfg.solver)
        it = iter(loader(0))
        next(it)
        wall, cpu = time.perf_counter(), time.process_time()
        for b in itertools.islice(it, steps):
            loss = sum(model(model.normalize(b["image"]), b["targets"]).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"training: {steps / wall:.2f} steps/s, {cpu / steps:.3f} CPU s/step "
              f"(batch {batch}, {cfg.data.crop_size[0]}×{cfg.data.crop_size[1]})")

        t = time.perf_counter()
        fast = next(iter(loader(resume_at)))
        t_fast = time.perf_counter() - t
        t = time.perf_counter()
        naive = next(itertools.islice(iter(loader(0)), resume_at // batch, None))
        t_naive = time.perf_counter() - t
        assert torch.equal(fast["image"], naive["image"]), "resumed batches differ"
        assert torch.equal(fast["index"], naive["index"]), "resumed batches differ"
        print(f"resume at sample {resume_at}: index skip {t_fast * 1000:.1f} ms, read and "
              f"discard {t_naive * 1000:.1f} ms: x{t_naive / t_fast:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
