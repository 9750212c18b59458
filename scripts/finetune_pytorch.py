#!/usr/bin/env python3
"""PyTorch's side of the MobileNetV2 fine-tuning exercise (docs/training.md): torchvision's
ImageNet MobileNetV2, its `classifier[1]` replaced by a fresh 2-way `nn.Linear`, `features`
frozen, trained on an ImageFolder with RandomResizedCrop(224) (or, with `--crop centre`, the
validation's resize and centre crop) and RandomHorizontalFlip, validated
with Resize(256) and CenterCrop(224), SGD with momentum, the last incomplete batch dropped, as
`cnnc train` runs the same recipe. Prints the validation accuracy after each epoch.

    venv/bin/python scripts/finetune_pytorch.py runs/sneakers demo/mobilenet_v2-b0353104.pth --epochs 3 --seed 0
"""
import argparse
import time

import torch
from torch import nn
from torchvision import datasets, models, transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="image folder with train/ and val/")
    parser.add_argument("checkpoint", help="torchvision's mobilenet_v2-b0353104.pth")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frozen-bn", choices=["train", "eval"], default="eval",
                        help="the frozen backbone's batch norms: running statistics (eval, as torchvision's "
                             "FrozenBatchNorm2d) or batch statistics (train)")
    parser.add_argument("--crop", choices=["random_resized", "centre"], default="random_resized",
                        help="training crop: RandomResizedCrop(224), or the validation's Resize(256), CenterCrop(224)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    crop = ([transforms.RandomResizedCrop(224)] if args.crop == "random_resized"
            else [transforms.Resize(256), transforms.CenterCrop(224)])
    train_tf = transforms.Compose(crop + [
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    val_tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    train = datasets.ImageFolder(f"{args.folder}/train", train_tf)
    val = datasets.ImageFolder(f"{args.folder}/val", val_tf)
    train_loader = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True, drop_last=True)
    val_loader = torch.utils.data.DataLoader(val, batch_size=32)
    model = models.mobilenet_v2()
    model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    model.classifier[1] = nn.Linear(model.last_channel, len(train.classes))
    for p in model.features.parameters():
        p.requires_grad = False
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                                momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        model.train()
        if args.frozen_bn == "eval":
            model.features.eval()
        total, steps = 0.0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        print(f"epoch {epoch}: train loss {total / steps:.4f}, val accuracy {100 * correct / len(val):.2f} % "
              f"({correct} of {len(val)}), {time.time() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
