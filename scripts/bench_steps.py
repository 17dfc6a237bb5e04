"""One training step of a grid, three ways, side by side in one process: our population, the
strongest PyTorch peer for batching many models (a `torch.func` ensemble: `stack_module_state`
+ `functional_call` + `vmap`, updated by a batched Adam over the stacked tensors), and the
per-setting loop (one plain model and one `torch.optim.Adam` per setting, minibatches taken by
tensor indexing). And the rate `torch.bmm` reaches on the same matrix shapes: the machine's
limit for this work.

    python scripts/bench_steps.py [--device cpu|cuda] [--repeats 7] [--steps 5] [--out FILE]

Every method: the same members (a stepsize per member), minibatch 128, float32, the same
cost (cross-entropy + L2 for logistic regression, with dropout 20%/50% for the MLP, -ELBO for
the VAE). Timings are medians over repetitions in which the methods alternate, each repetition
`steps` steps after a warm-up; on CUDA each timing is bracketed by synchronisations.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from adamrepro.models import LogisticRegression, MultilayerNetwork, VariationalAutoencoder
from adamrepro.optim import Adam
from adamrepro.records import cpu_name

BATCH = 128


# -- the plain single models of the loop and the ensemble -------------------------------------
class PlainLogReg(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.linear(x), y) + 0.5e-4 * self.linear.weight.pow(2).sum()


class PlainMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(784, 1000), nn.Linear(1000, 1000), nn.Linear(1000, 10)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x = F.dropout(x, 0.2, self.training)
        x = F.dropout(torch.relu(self.l1(x)), 0.5, self.training)
        x = F.dropout(torch.relu(self.l2(x)), 0.5, self.training)
        return F.cross_entropy(self.l3(x), y)


class PlainVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.mean, self.log_var = (
            nn.Linear(784, 500),
            nn.Linear(500, 50),
            nn.Linear(500, 50),
        )
        self.dec, self.out = nn.Linear(50, 500), nn.Linear(500, 784)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = F.softplus(self.enc(x))
        mean, log_var = self.mean(h), self.log_var(h)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        logits = self.out(F.softplus(self.dec(z)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(-1)
        return (rec + kl).mean()


# name -> (members, our population, a plain model, the layer sizes)
WORKLOADS: dict[str, tuple[int, Callable[[list[int]], nn.Module], type[nn.Module], list]] = {
    "logistic regression": (
        40,
        lambda s: LogisticRegression(784, 10, s, weight_decay=1e-4),
        PlainLogReg,
        [(784, 10)],
    ),
    "2x1000 MLP + dropout": (
        16,
        lambda s: MultilayerNetwork(784, 10, s),
        PlainMLP,
        [(784, 1000), (1000, 1000), (1000, 10)],
    ),
    "VAE (500 hidden, 50 latent)": (
        36,
        lambda s: VariationalAutoencoder(784, s),
        PlainVAE,
        [(784, 500), (500, 50), (500, 50), (50, 500), (500, 784)],
    ),
}


def matmul_flops(layers: list, members: int) -> float:
    """Multiply-adds x 2 of one step: the forward product and, in the backward, the weight
    gradient and the input gradient (none for the first layer, whose input is the data)."""
    forward = sum(2 * BATCH * i * o for i, o in layers)
    first = 2 * BATCH * layers[0][0] * layers[0][1]
    return members * (3 * forward - first)


def timed(device: torch.device, fn: Callable[[], None], steps: int) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / steps


def methods(name: str, device: torch.device) -> dict[str, Callable[[], None]]:
    members, population, plain, layers = WORKLOADS[name]
    torch.manual_seed(0)
    x = torch.rand(10_000, 784, device=device)
    y = torch.randint(0, 10, (10_000,), device=device)
    stepsizes = torch.logspace(-4, -2, members, dtype=torch.float64, device=device)

    def batch() -> Tensor:
        return torch.randint(0, len(x), (BATCH,), device=device)

    model = population([0] * members).to(device)
    ours = Adam(model.parameters(), stepsize=stepsizes)

    def population_step() -> None:
        idx = batch()
        cost = model.cost(x[idx], y[idx])
        ours.zero_grad(set_to_none=True)
        cost.sum().backward()
        ours.step()

    singles = [plain().to(device) for _ in range(members)]
    params, buffers = stack_module_state(singles)
    stacked = Adam(list(params.values()), stepsize=stepsizes)
    base = plain().to(device)

    def loss(p: dict, b: dict, xb: Tensor, yb: Tensor) -> Tensor:
        return functional_call(base, (p, b), (xb, yb))

    batched = vmap(loss, in_dims=(0, 0, None, None), randomness="different")

    def ensemble_step() -> None:
        idx = batch()
        cost = batched(params, buffers, x[idx], y[idx])
        stacked.zero_grad(set_to_none=True)
        cost.sum().backward()
        stacked.step()

    optimizers = [
        torch.optim.Adam(m.parameters(), lr=float(s), foreach=True)
        for m, s in zip(singles, stepsizes.tolist(), strict=True)
    ]

    def loop_step() -> None:
        idx = batch()
        xb, yb = x[idx], y[idx]
        for single, optimizer in zip(singles, optimizers, strict=True):
            cost = single(xb, yb)
            optimizer.zero_grad(set_to_none=True)
            cost.backward()
            optimizer.step()

    weights = [torch.randn(members, i, o, device=device) for i, o in layers]
    inputs = [torch.randn(members, BATCH, i, device=device) for i, _ in layers]
    grads = [torch.randn(members, BATCH, o, device=device) for _, o in layers]

    def matmuls_only() -> None:  # the same products, nothing else: the machine's limit
        for k, (w, a, g) in enumerate(zip(weights, inputs, grads, strict=True)):
            torch.bmm(a, w)  # forward
            torch.bmm(a.transpose(1, 2), g)  # weight gradient
            if k:
                torch.bmm(g, w.transpose(1, 2))  # input gradient

    return {
        "population (ours)": population_step,
        "torch.func vmap ensemble": ensemble_step,
        "per-setting loop": loop_step,
        "torch.bmm, same shapes": matmuls_only,
    }


def measure(name: str, device: torch.device, repeats: int, steps: int) -> dict[str, float]:
    """Median seconds per step of each method, the methods alternating."""
    todo = methods(name, device)
    for fn in todo.values():  # warm-up
        timed(device, fn, 2)
    times: dict[str, list[float]] = {k: [] for k in todo}
    for _ in range(repeats):
        for method, fn in todo.items():
            times[method].append(timed(device, fn, steps))
    return {k: statistics.median(v) for k, v in times.items()}


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return (
            f"{name}, CUDA {torch.version.cuda}, torch {torch.__version__}, float32 matmul "
            f"precision {torch.get_float32_matmul_precision()}"
        )
    return f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def table(device: torch.device, repeats: int, steps: int) -> str:
    lines = [
        f"Steps per second ({describe(device)}; minibatch {BATCH}, float32, Adam with a "
        f"stepsize per member; medians of {repeats} alternating repetitions of {steps} steps). "
        "In brackets: achieved matmul rate, GFLOP/s.",
        "",
        "| workload | G | population (ours) | torch.func vmap ensemble | per-setting loop "
        "| torch.bmm, same shapes | population / bmm |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (members, _, _, layers) in WORKLOADS.items():
        flops = matmul_flops(layers, members)
        seconds = measure(name, device, repeats, steps)
        cells = [f"{1 / s:.3g} ({flops / s / 1e9:.0f})" for s in seconds.values()]
        share = seconds["torch.bmm, same shapes"] / seconds["population (ours)"]
        lines.append(f"| {name} | {members} | {' | '.join(cells)} | {share:.0%} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = table(torch.device(args.device), args.repeats, args.steps)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
