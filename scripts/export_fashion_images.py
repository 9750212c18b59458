#!/usr/bin/env python3
"""Writes the first test images of Fashion-MNIST, one per class, as 28×28 grayscale PNGs named
`<index>_<class>.png` (the index in the test split, the true class name), for the quick start.

    venv/bin/python scripts/export_fashion_images.py /usr/share/datasets/fashion-mnist models/lenet_fashion/images
"""

import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = Path(__file__).resolve().parent.parent.joinpath("specs/labels/fashion_mnist.txt").read_text().split("\n")


def idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def main() -> None:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    images = idx(source / "t10k-images-idx3-ubyte.gz")
    labels = idx(source / "t10k-labels-idx1-ubyte.gz")
    out.mkdir(parents=True, exist_ok=True)
    written = set()
    for i, label in enumerate(labels):
        if label in written:
            continue
        name = CLASSES[label].lower().replace("/", "_").replace(" ", "_")
        Image.fromarray(images[i], mode="L").save(out / f"{i:04d}_{name}.png", optimize=True)
        written.add(label)
        if len(written) == 10:
            break


if __name__ == "__main__":
    main()
