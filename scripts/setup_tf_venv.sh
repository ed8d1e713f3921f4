#!/usr/bin/env bash
# Creates (or reuses) the separate TensorFlow virtual environment used only for the
# interoperability check. TensorFlow is never a panseg dependency.
#   PANSEG_TF_VENV  where the environment lives (default: ~/.cache/panseg/tf-venv)
set -euo pipefail
venv="${PANSEG_TF_VENV:-$HOME/.cache/panseg/tf-venv}"
stamp="$venv/.panseg-ready-v1"
if [ -f "$stamp" ]; then
    echo "TensorFlow venv ready at $venv (reused)" >&2
    echo "$venv/bin/python"
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q "tensorflow-cpu==2.16.2" "numpy<2" pillow >&2
"$venv/bin/python" -c "import tensorflow as tf; print('tensorflow', tf.__version__)" >&2
touch "$stamp"
echo "$venv/bin/python"
