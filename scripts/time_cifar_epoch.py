"""The cost of Figure 3: one training epoch of the c64-c64-c128-1000 network on random data of
CIFAR-10's shape (50,000 training and 10,000 test images, 3x32x32), minibatch 128, Adam.

    python scripts/time_cifar_epoch.py [--members 1 4] [--steps N] [--out FILE]

For each population size G (one curve's stepsize grid trains as G members), times the training
steps exactly as `adamrepro.train` takes them (model cost, backward, optimizer step, minibatch
by index permutation on the device) and the end-of-epoch evaluation of both sets. `--steps N`
times only the first N of the epoch's 391 steps and scales up (said in the output); without it
the whole epoch runs. The data is random: the cost of a step does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from adamrepro.models import ConvolutionalNetwork
from adamrepro.optim import build_optimizer
from adamrepro.settings import resolve_device
from adamrepro.training.population import MinibatchOrder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_epoch(members: int, steps: int | None, dropout: bool, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    x_train = torch.randn(50_000, 3, 32, 32, generator=generator).to(device)
    y_train = torch.randint(0, 10, (50_000,), generator=generator).to(device)
    x_test, y_test = x_train[:10_000], y_train[:10_000]
    model = ConvolutionalNetwork((3, 32, 32), 10, seeds=[0] * members, dropout=dropout).to(device)
    stepsizes = torch.logspace(-4, -2.5, members, dtype=torch.float64)
    optimizer = build_optimizer(model.parameters(), {"name": "adam", "stepsize": stepsizes})
    order = MinibatchOrder([0] * members, len(x_train), 128)
    total = order.steps_per_epoch
    steps = min(steps or total, total)

    def step(idx: torch.Tensor) -> None:
        cost = model.cost(x_train[idx], y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        cost.sum().backward()
        optimizer.step()

    model.train()
    for warm, idx in enumerate(order.epoch(device)):  # a few steps to warm up
        step(idx)
        if warm == 2:
            break
    sync(device)
    started = time.perf_counter()
    for k, idx in enumerate(order.epoch(device)):
        if k == steps:
            break
        step(idx)
    sync(device)
    train_s = (time.perf_counter() - started) * total / steps
    started = time.perf_counter()
    model.evaluate(x_train, y_train, 1000)
    model.evaluate(x_test, y_test, 1000)
    sync(device)
    return {
        "members": members,
        "steps_timed": steps,
        "steps": total,
        "train_s": train_s,
        "eval_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=None, help="time N steps and scale up")
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    lines = [
        "# One epoch of the Figure 3 network (random CIFAR-shaped data, minibatch 128, Adam)\n",
        f"Device: {device.type} ({name or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; dropout {'on' if args.dropout else 'off'}.",
        f"Command: `python {' '.join(sys.argv)}` ({time.strftime('%Y-%m-%d')})\n",
        "| members | training steps timed | training epoch (s) | per member (s) | evaluation,"
        " 60k images (s) |",
        "|---|---|---|---|---|",
    ]
    for members in args.members:
        r = time_epoch(members, args.steps, args.dropout, device)
        timed = f"{r['steps_timed']} of {r['steps']}" + (
            " (scaled up)" if r["steps_timed"] < r["steps"] else ""
        )
        lines.append(
            f"| {members} | {timed} | {r['train_s']:.1f} | {r['train_s'] / members:.1f}"
            f" | {r['eval_s']:.1f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
