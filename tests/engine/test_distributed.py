"""Two processes with torchrun on CPU (gloo): identical weights on both ranks, and the merged
evaluation equals a single-process evaluation of the saved checkpoint."""

import json
import os
import subprocess
import sys

import torch

from panseg.engine.demo import shipped_config
from panseg.engine.distributed import DistInfo, merge_evaluator

from .conftest import TINY


def test_two_process_gloo_training(tiny_records, tmp_path):
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", worker, shipped_config("demo_synthetic"), str(tmp_path),
           f"data.root={tiny_records}", *TINY, "solver.max_iter=3", "solver.batch_size=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    errors = [ln for ln in proc.stderr.splitlines() if "Error" in ln or "[rank" in ln]
    assert proc.returncode == 0, "\n".join(errors[-40:]) or proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ev0 = json.loads((tmp_path / "eval0.json").read_text())
    ev1 = json.loads((tmp_path / "eval1.json").read_text())
    assert ev0 == ev1

    # the merged two-rank evaluation equals one process over all val images
    from panseg.engine.data import build_eval_dataset
    from panseg.engine.inference import Predictor, evaluate, headline
    from panseg.engine.run import load_run

    run = str(tmp_path / "run")
    cfg, info, model, ckpt = load_run(run)
    assert ckpt["step"] == 3
    for k, v in model.state_dict().items():
        assert torch.equal(v, a[k]), k
    single = evaluate(Predictor(model, info, cfg.eval), build_eval_dataset(tiny_records, "val"),
                      progress=False)
    assert headline(single) == ev0


def test_merge_without_a_process_group_is_a_copy(tiny_records):
    from panseg.engine.data import build_eval_dataset
    from panseg.evaluation.evaluator import PanopticEvaluator

    ds = build_eval_dataset(tiny_records, "val")
    ev = PanopticEvaluator(ds.info)
    sample = ds.get(0)
    ev.update(sample["panoptic"].numpy(), sample["panoptic"].numpy())
    merged = merge_evaluator(ev)
    assert merged is not ev and merged.summarize() == ev.summarize()
    assert not DistInfo().distributed and DistInfo(world_size=2).distributed
