#!/usr/bin/env python3
"""PyTorch's side of `cnnc train specs/lenet_fashion.yaml`: the same recipe in eager PyTorch on this
machine's CPU, for side-by-side accuracy. LeNet for 1×28×28 images (the textbook layers, the first
convolution padded by 2), PyTorch's default initialisation, Adam (lr 1e-3), batch 8, images
normalised as `ToTensor()` then `Normalize(0.5, 0.5)`, no augmentation, a shuffled order each epoch,
the last incomplete batch dropped; test accuracy after each epoch. The IDX files are read with numpy
(gzipped or not).

    venv/bin/python scripts/train_fashion_pytorch.py /usr/share/datasets/fashion-mnist --epochs 2 --seed 0
"""

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch


def idx(directory: Path, name: str) -> np.ndarray:
    path = directory / name
    data = gzip.open(f"{path}.gz").read() if not path.exists() else path.read_bytes()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def split(directory: Path, prefix: str):
    x = idx(directory, f"{prefix}-images-idx3-ubyte").astype(np.float32) / 255.0
    y = idx(directory, f"{prefix}-labels-idx1-ubyte").astype(np.int64)
    return torch.from_numpy((x - 0.5) / 0.5).unsqueeze(1), torch.from_numpy(y)


def lenet() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    (x, y), (xt, yt) = split(args.data, "train"), split(args.data, "t10k")
    model = lenet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(y))
        for i in range(len(y) // args.batch):
            take = order[i * args.batch:(i + 1) * args.batch]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[take]), y[take]).backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            accuracy = (model(xt).argmax(1) == yt).double().mean().item()
        print(f"epoch {epoch}: test accuracy {accuracy:.4f} ({seconds:.1f} s of training)", flush=True)


if __name__ == "__main__":
    main()
