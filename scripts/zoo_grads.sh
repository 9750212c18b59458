#!/usr/bin/env bash
# Whole-model gradients for the whole zoo, or for the models named: for each, PyTorch autograd's
# float64 training step (and how far PyTorch's own float32 step is from it) becomes a fixture
# (tests/fixtures/generate_grads.py --out target/zoo-grads.json), then cnnc's CPU reference must
# give the same loss, gradients and running statistics within 1e-9 (tests/grads.rs) and the GPU
# within a small multiple of PyTorch's float32 error, and within 1e-4 of the float64 gradient of
# the branches its forward took at kinks and max-pooling windows (tests/gpu_train.rs), one model at
# a time.
#
#   scripts/zoo_grads.sh                      # all 47 (hours on two cores; big models need memory)
#   scripts/zoo_grads.sh squeezenet1_1 vgg11  # some
#
# Needs the fixtures' virtualenv: python3 -m venv venv && venv/bin/pip install torch torchvision numpy
# Exits 1 when a model fails on either executor; target/zoo-grads/<model>.{cpu,gpu}.log keep the
# details.
set -uo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-venv/bin/python}
if ! "$python" -c "import torch, torchvision" 2>/dev/null; then
    echo "error: $python cannot import torch and torchvision; see the comment at the top of $0" >&2
    exit 2
fi
if [ $# -gt 0 ]; then
    models=("$@")
else
    mapfile -t models < <("$python" -c "import json; print('\n'.join(sorted(json.load(open('tests/reference/torchvision_facts.json')))))")
fi
fixture=target/zoo-grads.json
logs=target/zoo-grads
mkdir -p "$logs"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --release --no-run --test grads --test gpu_train >/dev/null 2>&1 || {
    echo "error: the tests do not build: cargo test --release --no-run --test grads --test gpu_train" >&2
    exit 2
}

failed=0
printf '%-22s %-6s %-6s %s\n' model cpu gpu "GPU gradients from float64 (PyTorch float32's), on the GPU's branches"
for model in "${models[@]}"; do
    if ! "$python" tests/fixtures/generate_grads.py --out "$fixture" "$model" >"$logs/$model.pytorch.log" 2>&1; then
        printf '%-22s %s\n' "$model" "PyTorch failed: see $logs/$model.pytorch.log"
        failed=1
        continue
    fi
    run() {
        CNNC_GRADS="$fixture" CNNC_ZOO="$model" cargo test --release -q --test "$1" "$2" -- --nocapture >"$logs/$model.$3.log" 2>&1 \
            && echo pass || echo FAIL
    }
    cpu=$(run grads cpu_reference_gives_pytorchs_gradients cpu)
    gpu=$(run gpu_train zoo_models_step_on_the_gpu_within_pytorchs_float32_error gpu)
    detail=$(grep -o 'gradients [0-9.e+-]* from the reference (PyTorch float32: [0-9.e+-]*), [0-9.e+-]* on the GPU.s branches ([0-9]* elements on another branch)' "$logs/$model.gpu.log" | head -1)
    [ "$gpu" = pass ] || detail="$detail $(grep -A1 panicked "$logs/$model.gpu.log" | tail -1 | cut -c1-160)"
    printf '%-22s %-6s %-6s %s\n' "$model" "$cpu" "$gpu" "$detail"
    [ "$cpu" = pass ] && [ "$gpu" = pass ] || failed=1
done
exit $failed
