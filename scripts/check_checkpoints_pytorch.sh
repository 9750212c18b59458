#!/usr/bin/env bash
# The checkpoint round trip through PyTorch: for each model named (default: resnet18, mobilenet_v2
# and densenet121), `cnnc train` takes two steps on a CIFAR-10-format folder of random images at
# 32×32, `cnnc run` scores a random batch with the checkpoint it wrote, and
# scripts/check_checkpoint_pytorch.py loads the same checkpoint into torchvision's model with
# `load_state_dict(..., strict=True)` and compares its logits with cnnc's (relative L2 ≤ 1e-4).
#
#   scripts/check_checkpoints_pytorch.sh                 # the three models
#   scripts/check_checkpoints_pytorch.sh resnet18 vgg11  # the models named
#
# Needs a Python with torch, torchvision, numpy and safetensors (PYTHON, default venv/bin/python)
# and a cnnc binary (CNNC, default target/debug/cnnc, which `cargo test` builds). Exits 1 when a
# model's checkpoint does not load or gives other logits.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-venv/bin/python}
cnnc=${CNNC:-target/debug/cnnc}
if ! "$python" -c "import torch, torchvision, numpy, safetensors" 2>/dev/null; then
    echo "error: $python cannot import torch, torchvision, numpy and safetensors" >&2
    echo "  python3 -m venv venv && venv/bin/pip install torch torchvision numpy safetensors" >&2
    exit 2
fi
if [ ! -x "$cnnc" ]; then
    echo "error: no cnnc binary at $cnnc: run cargo build (or set CNNC)" >&2
    exit 2
fi
if [ $# -gt 0 ]; then models=("$@"); else models=(resnet18 mobilenet_v2 densenet121); fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$(pwd)
# Six CIFAR-10 binary batch files of 8 random images each, and a random input batch [2, 3, 32, 32].
"$python" - "$work" <<'EOF'
import sys, numpy as np
work = sys.argv[1]
rng = np.random.default_rng(0)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    rows = np.concatenate([rng.integers(0, 10, (8, 1)), rng.integers(0, 256, (8, 3072))], axis=1)
    rows.astype(np.uint8).tofile(f"{work}/{name}")
np.save(f"{work}/x.npy", rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
EOF

failed=0
for model in "${models[@]}"; do
    spec=$work/${model}_32.yaml
    if [ ! -f "specs/$model.yaml" ]; then
        echo "$model: no specs/$model.yaml" >&2
        failed=1
        continue
    fi
    # The zoo spec at 32×32, importing its library and labels from this checkout.
    sed -e 's/input: \[3, 224, 224\]/input: [3, 32, 32]/' -e 's/resize: 256, crop: 224, //' \
        -e "s#import: lib/#import: $root/specs/lib/#" -e "s#labels: labels/#labels: $root/specs/labels/#" \
        "specs/$model.yaml" >"$spec"
    out=$work/$model
    if ! "$cnnc" train "$spec" --data "cifar10:$work" --limit 16 --out "$out" >"$work/$model.log" 2>&1 ||
        ! "$cnnc" run "$spec" --weights "$out/last.safetensors" --input "$work/x.npy" \
            --output "$work/$model.npy" >>"$work/$model.log" 2>&1; then
        echo "$model: cnnc failed:" >&2
        cat "$work/$model.log" >&2
        failed=1
        continue
    fi
    "$python" scripts/check_checkpoint_pytorch.py "$model" "$out/last.safetensors" "$work/x.npy" \
        "$work/$model.npy" || failed=1
done
exit $failed
