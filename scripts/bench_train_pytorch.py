#!/usr/bin/env python3
"""PyTorch's side of `cnnc bench --train`: a model trained with Adam (lr 1e-3) in eager mode on this
machine's CPU, images per second at the batch sizes given, median over timed steps after warm-up.
The model is the book's LeNet, or a torchvision model named with `--model` (trained from its
default initialisation, batch-norm in training mode). Run it beside
`cnnc bench specs/MODEL.yaml --train --batch N` for side-by-side numbers.

    venv/bin/python scripts/bench_train_pytorch.py 8 64
    venv/bin/python scripts/bench_train_pytorch.py --model resnet18 8
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
from generate import LeNet  # noqa: E402


def build(name: str) -> torch.nn.Module:
    if name == "lenet":
        return LeNet()
    return torchvision.models.get_model(name, weights=None)


def bench(name: str, batch: int, warmup: int = 20, iters: int = 100) -> float:
    torch.manual_seed(0)
    model = build(name).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    size = 32 if name == "lenet" else 224
    x = torch.rand(batch, 3, size, size) * 2 - 1
    y = torch.arange(batch) % 10
    times = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("batches", type=int, nargs="*", default=[8, 64], help="batch sizes (default: 8 64)")
    parser.add_argument("--model", default="lenet", help="lenet, or a torchvision model name (default: lenet)")
    args = parser.parse_args()
    # Large models take seconds a step: fewer steps.
    warmup, iters = (20, 100) if args.model == "lenet" else (2, 5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch in args.batches:
        print(f"{args.model} batch {batch}: {bench(args.model, batch, warmup, iters):.1f} images/s")
