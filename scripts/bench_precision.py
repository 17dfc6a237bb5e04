"""One training step of each long protocol's population in 32-true and in bf16-mixed, side by
side in one process, against the bare matmuls or convolutions of the same shapes at the same
precision (the machine's limit for this work); and the CNN in both memory layouts.

    python scripts/bench_precision.py [--repeats 5] [--steps 3] [--out FILE]

Each step is the training loop's: the model's cost under `RunSettings.autocast()`, backward,
our Adam with a stepsize per member; minibatch 128 (100 for the VAE), dropout as the figures
run it. The bare rate runs only the products (forward, weight and input gradients) or the
grouped convolutions (forward and backward) of the same shapes, in bfloat16 for bf16-mixed.
Timings are medians over repetitions in which the variants alternate, after a warm-up; FLOPs
are counted by torch's FlopCounterMode on one member's step, times the members.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from adamrepro.models import ConvolutionalNetwork, MultilayerNetwork, VariationalAutoencoder
from adamrepro.optim import Adam
from adamrepro.records import cpu_name
from adamrepro.settings import RunSettings, TrainerSettings

PRECISIONS = ("32-true", "bf16-mixed")
CPU = torch.device("cpu")


def settings(precision: str) -> RunSettings:
    return RunSettings(0, CPU, torch.float32, True, TrainerSettings(), precision=precision)


# name -> (members, model, input shape, batch); as the long protocols run them
WORKLOADS: dict[str, tuple[int, Callable[[list[int]], torch.nn.Module], tuple[int, ...], int]] = {
    "2x1000 MLP + dropout (Fig. 2a)": (4, lambda s: MultilayerNetwork(784, 10, s), (784,), 128),
    "CNN + dropout (Fig. 3)": (
        1,
        lambda s: ConvolutionalNetwork((3, 32, 32), 10, s, dropout=True),
        (3, 32, 32),
        128,
    ),
    "CNN + dropout, 4 members": (
        4,
        lambda s: ConvolutionalNetwork((3, 32, 32), 10, s, dropout=True),
        (3, 32, 32),
        128,
    ),
    "VAE (Fig. 4)": (36, lambda s: VariationalAutoencoder(784, s), (784,), 100),
}


def step_of(name: str, members: int) -> tuple[torch.nn.Module, Callable[[RunSettings], None]]:
    _, build, shape, batch = WORKLOADS[name]
    torch.manual_seed(0)
    model = build(list(range(members)))
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    optimizer = Adam(model.parameters(), stepsize=torch.logspace(-4, -2, members))

    def step(run: RunSettings) -> None:
        with run.autocast():
            cost = model.cost(x, y)
        optimizer.zero_grad(set_to_none=True)
        cost.sum().backward()
        optimizer.step()

    return model, step


def bare_ops(
    model: torch.nn.Module,
    x_shape: tuple[int, ...],
    dtype: torch.dtype,
    memory_format: torch.memory_format,
) -> Callable[[], None]:
    """The model's products or grouped convolutions alone, forward and backward."""
    if isinstance(model, ConvolutionalNetwork):
        g = model.members
        size, convs = x_shape[-1], []
        for conv in model.convs:
            w = conv.weight.detach().flatten(0, 1).to(dtype).contiguous(memory_format=memory_format)
            c_in = w.shape[1] * g
            a = torch.randn(128, c_in, size, size, dtype=dtype)
            convs.append(
                (a.contiguous(memory_format=memory_format).requires_grad_(), w.requires_grad_())
            )
            size = (size - 1) // 2 + 1

        def convolutions() -> None:
            for a, w in convs:
                out = F.conv2d(a, w, padding=2, groups=g)
                out.backward(torch.ones_like(out))

        return convolutions
    weights = [p.detach().to(dtype) for n, p in model.named_parameters() if n.endswith("weight")]
    batch = x_shape[0]
    inputs = [torch.randn(w.shape[0], batch, w.shape[1], dtype=dtype) for w in weights]
    grads = [torch.randn(w.shape[0], batch, w.shape[2], dtype=dtype) for w in weights]

    def products() -> None:
        for k, (w, a, g) in enumerate(zip(weights, inputs, grads, strict=True)):
            torch.bmm(a, w)
            torch.bmm(a.transpose(1, 2), g)
            if k:
                torch.bmm(g, w.transpose(1, 2))

    return products


def timed(fn: Callable[[], None], steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - started) / steps


def measure(name: str, repeats: int, steps: int) -> dict[str, tuple[float, float]]:
    """variant -> (median seconds per step, matmul/convolution FLOPs per step)."""
    members, _, shape, batch = WORKLOADS[name]
    model, step = step_of(name, members)
    layouts = [torch.channels_last, torch.contiguous_format]
    conv = isinstance(model, ConvolutionalNetwork)
    variants: dict[str, Callable[[], None]] = {}
    for precision in PRECISIONS:
        run = settings(precision)
        dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
        for layout in layouts if conv else layouts[:1]:
            tag = f"{precision}{', NCHW' if layout is torch.contiguous_format else ''}"

            def population(run: RunSettings = run, layout: torch.memory_format = layout) -> None:
                ConvolutionalNetwork.memory_format = layout
                step(run)

            variants[f"step {tag}"] = population
            variants[f"bare {tag}"] = bare_ops(model, (batch, *shape), dtype, layout)
    # FLOPs of one member's step, times G (FlopCounterMode overcounts grouped convolutions);
    # the bare operations are the same products, so the same count
    with FlopCounterMode(display=False) as counter:
        step_of(name, 1)[1](settings("32-true"))
    flops = members * float(counter.get_total_flops())
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        timed(fn, 1)
    for _ in range(repeats):
        for key, fn in variants.items():
            times[key].append(timed(fn, steps))
    ConvolutionalNetwork.memory_format = torch.channels_last
    return {key: (statistics.median(values), flops) for key, values in times.items()}


def table(repeats: int, steps: int) -> str:
    lines = [
        f"Steps per second ({cpu_name()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}; medians of {repeats} alternating repetitions of {steps} steps). "
        "In brackets: achieved matmul/convolution rate, GFLOP/s. Bare: the same products "
        "or convolutions alone, at the same precision.",
        "",
        "| workload | G | variant | population step | bare ops | step / bare "
        "| speed-up over the step before (32-true; the CNN in NCHW) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (members, *_) in WORKLOADS.items():
        results = measure(name, repeats, steps)
        for key in [k for k in results if k.startswith("step ")]:
            tag = key.removeprefix("step ")
            (seconds, flops), (bare, _) = results[key], results[f"bare {tag}"]
            base = results.get("step 32-true, NCHW", results["step 32-true"])[0]  # as before
            lines.append(
                f"| {name} | {members} | {tag} | {1 / seconds:.3g} ({flops / seconds / 1e9:.0f}) "
                f"| {1 / bare:.3g} ({flops / bare / 1e9:.0f}) | {bare / seconds:.0%} "
                f"| {base / seconds:.2f}x |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def profile(name: str, precision: str, steps: int = 5) -> str:
    """Where one population step's time goes: torch's profiler, self CPU time per operator
    (the top ten, and the rest), as a share of the step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    _, step = step_of(name, WORKLOADS[name][0])
    run = settings(precision)
    for _ in range(2):
        step(run)
    with profiler(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(run)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = [
        f"Where the time of one {precision} step of the {name} population goes "
        f"({total / steps / 1e3:.1f} ms a step, self CPU time, torch.profiler over "
        f"{steps} steps):",
        "",
        "| operator | ms a step | share |",
        "|---|---|---|",
    ]
    for e in events[:10]:
        lines.append(
            f"| {e.key} | {e.self_cpu_time_total / steps / 1e3:.1f} "
            f"| {e.self_cpu_time_total / total:.0%} |"
        )
    rest = sum(e.self_cpu_time_total for e in events[10:])
    lines.append(f"| the rest | {rest / steps / 1e3:.1f} | {rest / total:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = table(args.repeats, args.steps)
    report += "\n\n" + profile("2x1000 MLP + dropout (Fig. 2a)", "bf16-mixed")
    report += "\n\n" + profile("2x1000 MLP + dropout (Fig. 2a)", "32-true")
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
