"""Long-run units on the two cores: one runner of two threads against two runners of one thread
each, side by side (`make long-runs RUNNERS=2`).

    python scripts/bench_runners.py [--steps 20] [--rounds 3] [--out FILE]

For the first unit of each long protocol (as `python -m adamrepro.long_runs` composes it), the
training step of its population (`runbook.measure_cpu`: the model's cost in the unit's
precision, backward, the optimizer, on random inputs of the data's shape), timed as one process
with two threads, then as two processes with one thread each started together. Each time is
the fastest of --rounds rounds of --steps steps; the two layouts alternate, round by round.
"Units per hour" counts both runners: 2 / (one-thread step time) against 1 / (two-thread step
time). Figure 2 (a)'s population is timed after its halving (2 members): what it runs for 198
of its 200 passes. Evaluations and checkpoints are not in the step; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
from pathlib import Path

HALVED = {"fig2a": 2}  # members kept after the halving of each unit that halves


def step_time(protocol: str, threads: int, steps: int, start=None, out=None) -> float:
    import torch

    from adamrepro.long_runs import UNITS, unit_config
    from adamrepro.runbook import measure_cpu

    torch.set_num_threads(threads)
    unit = next(u for u in UNITS if u.protocol == protocol)
    config = unit_config(unit, "data.root=data")
    members = HALVED.get(protocol)
    measure_cpu(config, steps=1, members=members)  # built and warm before the start
    if start is not None:
        start.wait()
    seconds = measure_cpu(config, steps=steps, members=members)
    if out is not None:
        out.put(seconds)
    return seconds


def side_by_side(protocol: str, steps: int) -> float:
    """The mean step time of two one-thread runners started together."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(2), context.Queue()
    runners = [
        context.Process(target=step_time, args=(protocol, 1, steps, start, out)) for _ in range(2)
    ]
    for runner in runners:
        runner.start()
    times = [out.get() for _ in runners]
    for runner in runners:
        runner.join()
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--protocols", nargs="+", default=["fig4", "fig2a", "fig3"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from adamrepro.records import cpu_name

    lines = [
        f"Machine: {cpu_name()}; each time the fastest of {args.rounds} rounds of "
        f"{args.steps} steps (`python scripts/bench_runners.py --steps {args.steps} "
        f"--rounds {args.rounds}`).",
        "",
        "| protocol | one runner, 2 threads (ms/step) | two runners, 1 thread each (ms/step, "
        "each) | units per hour, two runners / one |",
        "|---|---|---|---|",
    ]
    for protocol in args.protocols:
        steps = max(1, args.steps // (8 if protocol == "fig3" else 1))
        one, two = [], []
        for _ in range(args.rounds):
            one.append(step_time(protocol, 2, steps))
            two.append(side_by_side(protocol, steps))
        ratio = 2 / min(two) / (1 / min(one))
        lines.append(f"| {protocol} | {min(one) * 1e3:.1f} | {min(two) * 1e3:.1f} | {ratio:.2f}x |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out is not None:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
