#!/usr/bin/env bash
# The test command of the README: installs panseg with its test extras (torch pinned to the
# local CPU build through .ci/constraints.txt), prepares the separate TensorFlow environment
# for the interoperability check (reused when it exists), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -c .ci/constraints.txt -e '.[test,torch]'
# evaluation oracle: cityscapesScripts' evaluators (its own deps are GUI/plotting tools)
python3 -m pip install -q --no-deps cityscapesscripts==2.3.0 pyquaternion
PANSEG_TF_PYTHON="$(bash scripts/setup_tf_venv.sh)"
export PANSEG_TF_PYTHON
python3 -m ruff check src tests benchmarks scripts
python3 -m pytest -q "$@"
