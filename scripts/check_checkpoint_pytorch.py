#!/usr/bin/env python3
"""Loads a checkpoint that `cnnc train` wrote into the torchvision model of the same name with
`load_state_dict(..., strict=True)`, runs it in eval mode on an input batch, and compares its logits
with the ones `cnnc run` wrote for the same checkpoint and input.

    cnnc run SPEC --weights CKPT --input x.npy --output cnnc.npy
    venv/bin/python scripts/check_checkpoint_pytorch.py MODEL CKPT x.npy cnnc.npy
"""

import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file


def main() -> None:
    name, checkpoint, x_path, logits_path = sys.argv[1:5]
    state = load_file(checkpoint)
    heads = [k for k in state if k.endswith(".weight") and state[k].dim() == 2]
    classes = state[heads[-1]].shape[0]
    model = torchvision.models.get_model(name, weights=None, num_classes=classes)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(np.load(x_path))).double().numpy()
    theirs = np.load(logits_path).astype(np.float64)
    error = np.linalg.norm(ours - theirs) / np.linalg.norm(ours)
    print(f"{name}: loaded with strict=True ({len(state)} tensors); logits relative L2 {error:.1e} from cnnc's")
    if error > 1e-4:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
