#!/usr/bin/env python3
"""Builds a two-class ImageFolder from Fashion-MNIST for the MobileNetV2 fine-tuning exercise:
sneakers (class 7) against ankle boots (class 9), upscaled from 28x28 to 224x224 RGB with PIL's
bilinear filter, as `DIR/train/<class>/NNNNN.png` (from the training split) and
`DIR/val/<class>/NNNNN.png` (from the test split), the first N of each class in file order.

    venv/bin/python scripts/make_fashion_folder.py /usr/share/datasets/fashion-mnist runs/sneakers \
        --train 200 --val 100
"""
import argparse
import gzip
import pathlib

import numpy as np
from PIL import Image

CLASSES = {7: "sneaker", 9: "ankle_boot"}


def idx(path):
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


def find(folder, stem):
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"no {stem}[.gz] in {folder}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fashion", type=pathlib.Path, help="folder of Fashion-MNIST's IDX files")
    parser.add_argument("out", type=pathlib.Path, help="the image folder to write")
    parser.add_argument("--train", type=int, default=200, help="training images per class")
    parser.add_argument("--val", type=int, default=100, help="validation images per class")
    parser.add_argument("--size", type=int, default=224, help="side of the written images")
    args = parser.parse_args()
    for split, prefix, count in (("train", "train", args.train), ("val", "t10k", args.val)):
        images = idx(find(args.fashion, f"{prefix}-images-idx3-ubyte"))
        labels = idx(find(args.fashion, f"{prefix}-labels-idx1-ubyte"))
        for label, name in CLASSES.items():
            folder = args.out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in np.flatnonzero(labels == label)[:count]:
                image = Image.fromarray(images[index]).resize((args.size, args.size), Image.BILINEAR)
                image.convert("RGB").save(folder / f"{index:05d}.png")
        print(f"{args.out / split}: {count} images per class")


if __name__ == "__main__":
    main()
