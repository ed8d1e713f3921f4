"""Run under torchrun by test_distributed.py: train a tiny config with DDP on gloo, then save
this rank's parameters and the merged evaluation."""

import json
import os
import sys

import torch

from panseg.engine import distributed as D
from panseg.engine.config import load_config
from panseg.engine.trainer import train


def main() -> None:
    config, out, *overrides = sys.argv[1:]
    info = D.setup(os.environ, "cpu")
    assert info.world_size == 2 and torch.distributed.get_backend() == "gloo"
    cfg = load_config(config, overrides)
    result = train(cfg, os.path.join(out, "run"), dist_info=info, progress=False,
                   log=lambda m: None)
    torch.save(result["model"].state_dict(), os.path.join(out, f"rank{info.rank}.pt"))
    with open(os.path.join(out, f"eval{info.rank}.json"), "w") as f:
        json.dump(result["eval"], f)
    D.cleanup()


if __name__ == "__main__":
    main()
