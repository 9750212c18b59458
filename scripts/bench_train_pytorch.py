#!/usr/bin/env python3
"""PyTorch's side of `cnnc bench --train`: the book's LeNet trained with Adam (lr 1e-3) in eager
mode on this machine's CPU, images per second at the batch sizes given, median over timed steps
after warm-up. Run it beside `cnnc bench specs/lenet.yaml --train --batch N` for side-by-side numbers.

    venv/bin/python scripts/bench_train_pytorch.py 8 64
"""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
from generate import LeNet  # noqa: E402


def bench(batch: int, warmup: int = 20, iters: int = 100) -> float:
    torch.manual_seed(0)
    model = LeNet().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
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
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch in [int(b) for b in sys.argv[1:]] or [8, 64]:
        print(f"lenet batch {batch}: {bench(batch):.0f} images/s")
