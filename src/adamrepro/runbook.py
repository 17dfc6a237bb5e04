"""The GPU runbook: the long protocols of the paper, in order of value, run in pieces.

    python -m adamrepro.runbook [--minutes 9] [--runs outputs/gpu] [--data-root DIR]
    python -m adamrepro.runbook --status | --plan [--measure] | --collect FILE | --figures

Each invocation trains for at most `--minutes` (the run it is in checkpoints and pauses when
the time is up), skips what is complete, continues what is paused, and ends with a table of
where every protocol stands: "all done" (exit 0) when nothing is left, else exit 75 ("run the
same command again"). A killed invocation loses at most the work since its run's last
checkpoint. A protocol whose data is missing is skipped and said so; the others go on.

`--collect FILE` packs every run's record.json and train.log (not the checkpoints) into one
.tar.gz, small enough to bring back from a machine that will be taken away; `--figures` draws
the figures of the complete protocols from the records (here, after unpacking them). `--plan`
prints what each protocol costs: matmul FLOPs and operations per step (counted, not guessed),
CPU seconds per step (`--measure`), and a projection of its time on one H100, whose
assumptions are stated beside it. `--tiny` runs the same protocols at toy sizes, to check the
machinery in seconds (the CI does, on generated data).

The protocols reuse the training loop (`train.train`), the configs and the figure code; this
module only orders runs, divides the time and reports.
"""

from __future__ import annotations

import logging
import math
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

from .errors import USER_ERRORS, DataError, command_parser
from .protocol import Protocol, Run, every_variant, run_log, run_state, variant_overrides
from .records import RECORD_NAME, read_record

# What --plan assumes of one H100 for a projection (replaced by measurements once one is lent):
H100_MATMUL = 25e12  # FLOP/s sustained by float32 batched matmuls at "highest" precision (no
#                      TF32): about half the FP32 peak, for products of these sizes
H100_MEMORY = 2.0e12  # bytes/s sustained by the elementwise passes (optimizer, activations)
BYTES_PER_PARAMETER = 100  # per step: about 9 passes of the update over p, g, m, v and scratch
LAUNCH = 8e-6  # seconds per operation: eager PyTorch's dispatch and launch, host-bound
INPUT_SHAPES = {"mnist": (784,), "cifar10": (3, 32, 32)}
TRAINING_SET = {"mnist": 60_000, "cifar10": 50_000}


# The GPU runbook's protocols (the variants of configs/protocol/*.yaml that name a `gpu`), in
# order of value: Figure 2 (a) at 200 passes, Figure 4's both blocks, Adam's band of 3 seeds
# for Figure 2 (a), Figure 3.
ORDER = ("fig2a", "fig4", "fig2a_3seeds", "fig3")


def _protocols() -> list[Protocol]:
    found = {p.gpu: replace(p, name=p.gpu) for p in every_variant() if p.gpu}
    return [found[n] for n in [*[n for n in ORDER if n in found], *sorted(set(found) - set(ORDER))]]


PROTOCOLS = _protocols()
BY_NAME = {p.name: p for p in PROTOCOLS}


def compose_run(protocol: Protocol, run: Run, data_root: str, extra: list[str], tiny: bool):
    """The run's config: `tiny` adds the overrides of its protocol's `tiny` variant."""
    small = variant_overrides(protocol.figure, "tiny") if tiny else []
    return protocol.compose(run, f"data.root={data_root}", "trainer.progress=false", *small, *extra)


def run_folder(runs: Path, protocol: Protocol, run: Run) -> Path:
    return runs / protocol.name / run.name


def state(runs: Path, protocol: Protocol) -> list[tuple[Run, str, int, int]]:
    """(run, status, epochs done, epochs) for each run of the protocol."""
    return [(run, *run_state(run_folder(runs, protocol, run))) for run in protocol.runs]


def status_table(
    runs: Path, skipped: dict[str, str], only: list[str] | None = None
) -> tuple[str, bool]:
    """A line per protocol, and whether every chosen one that can run is complete."""
    lines, all_done = [], True
    for protocol in PROTOCOLS:
        if only and protocol.name not in only:
            continue
        if protocol.name in skipped:
            lines.append(f"{protocol.name:14s} skipped: {skipped[protocol.name]}")
            continue
        runs_state = state(runs, protocol)
        complete = sum(s == "completed" for _, s, _, _ in runs_state)
        done = sum(d for *_, d, _ in runs_state)
        total = sum(e for *_, e in runs_state) or None
        all_done &= complete == len(runs_state)
        progress = f"{done}/{total} epochs" if total else "not started"
        lines.append(f"{protocol.name:14s} {complete}/{len(runs_state)} runs complete, {progress}")
    return "\n".join(lines), all_done


def train_one(
    protocol_name: str,
    run_name: str,
    runs: Path,
    data_root: str,
    extra: list[str],
    tiny: bool,
    clock: float,
) -> tuple[str, str | None, bool]:
    """Train (or continue) one run, here or in a worker process: its status, the reason its
    data is missing (or None), and whether it trained at all."""
    from .training import train

    protocol = BY_NAME[protocol_name]
    run = next(r for r in protocol.runs if r.name == run_name)
    config = compose_run(protocol, run, data_root, extra, tiny)
    folder = run_folder(runs, protocol, run)
    before = read_record(folder)
    try:
        with run_log(folder):
            record = train(config, folder, started=clock)
    except DataError as error:
        return "skipped", str(error), False
    return record["status"], None, before is None or before["status"] != "completed"


def run_pieces(
    runs: Path,
    data_root: str,
    minutes: float,
    only: list[str] | None,
    extra: list[str],
    tiny: bool,
    parallel: int = 1,
) -> bool:
    """Train within the time budget, protocol after protocol; True when all are complete.
    With `parallel` > 1 the runs of a protocol train at once, in that many processes (on a
    GPU whose small populations leave it waiting for the host, they fill each other's gaps)."""
    started = time.monotonic()
    skipped: dict[str, str] = {}
    extra = [*extra, f"trainer.max_minutes={minutes}"]
    trained = False
    for protocol in PROTOCOLS:
        if only and protocol.name not in only:
            continue
        if trained and time.monotonic() - started >= 60 * minutes:
            break
        # The first runs of a piece get the whole budget from their own start, so that a piece
        # always trains, however long loading took; later runs share what is left.
        clock = started if trained else time.monotonic()
        jobs = [
            (protocol.name, run.name, runs, data_root, extra, tiny, clock) for run in protocol.runs
        ]
        if parallel > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
                outcomes = list(pool.map(train_one, *zip(*jobs, strict=True)))
        else:
            outcomes = []
            for job in jobs:
                if outcomes and (outcomes[-1][0] == "paused" or outcomes[-1][1]):
                    break
                if outcomes and time.monotonic() - started >= 60 * minutes:
                    break
                outcomes.append(train_one(*job[:-1], started if outcomes else clock))
        for (_, run_name, *_), (status, missing, did_train) in zip(jobs, outcomes, strict=False):
            print(f"{protocol.name}/{run_name}: {status}", file=sys.stderr, flush=True)
            trained = trained or did_train
            if missing:
                skipped[protocol.name] = missing
        if any(status == "paused" for status, _, _ in outcomes):
            break
    table, done = status_table(runs, skipped, only)
    print(table)
    return done and not skipped


def collect(runs: Path, target: Path) -> int:
    """Pack the records and logs (not the checkpoints) of every run into one .tar.gz."""
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(runs.rglob(RECORD_NAME)):
            for name in (RECORD_NAME, "train.log"):
                file = path.parent / name
                if file.is_file():
                    archive.add(file, arcname=str(file.relative_to(runs)))
            count += 1
    return count


def figures(runs: Path, results: Path) -> list[str]:
    """Draw the figure of each complete protocol (3 seeds replace 1 where both are there)."""
    from .figures.plot import make_figure

    drawn = {}
    for protocol in PROTOCOLS:
        states = state(runs, protocol)
        if any(s != "completed" for _, s, _, _ in states):
            continue
        drawn[protocol.figure] = protocol
    for protocol in drawn.values():
        records = [read_record(run_folder(runs, protocol, r)) for r in protocol.runs]
        devices = sorted({r["device"]["name"] for r in records})
        seconds = sum(r["wall_time_s"] for r in records)
        for drawing in protocol.draws:
            note = f"{drawing.note}; {', '.join(devices)}, {seconds / 60:.0f} min of training"
            make_figure(
                drawing.figure,
                [str(runs / protocol.name)],
                results / drawing.out,
                note,
                drawing.xlim,
                drawing.ylim,
            )
    return list(drawn)


# -- what each protocol costs -----------------------------------------------------------------
def step_cost(config) -> dict[str, float]:
    """Matmul FLOPs and operations of one training step of the run's population, counted on
    the meta device (no data, no arithmetic), and its parameter count."""
    import torch
    from omegaconf import OmegaConf
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from .data import TensorData
    from .models import build_model
    from .training import population

    cfg = OmegaConf.to_container(config, resolve=True)
    members = population(cfg)
    shape = INPUT_SHAPES[cfg["data"]["name"]]
    batch = int(cfg["trainer"]["batch_size"])
    with torch.device("meta"):
        x = torch.empty(batch, *shape)
        y = torch.zeros(batch, dtype=torch.long)
        data = TensorData(x, y, x, y, 10)
        model = build_model(cfg["model"], data, [m["seed"] for m in members])

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    with FlopCounterMode(display=False) as flops, Count():
        model.train()
        model.cost(x, y).sum().backward()
    parameters = sum(p.numel() for p in model.parameters())
    # the update: about 10 operations per parameter tensor (see BYTES_PER_PARAMETER)
    ops = Count.ops + 10 * len(list(model.parameters()))
    return {
        "members": len(members),
        "flops": float(flops.get_total_flops()),
        "ops": float(ops),
        "parameters": float(parameters),
    }


def measure_cpu(config, steps: int = 3, members: int | None = None) -> float:
    """Seconds per training step of the run's population on this CPU (after one warm-up), on
    random inputs of the data's shape, in the run's precision: the cost of a step does not
    depend on the values. `members` times the first that many members only (a population
    after halving)."""
    import torch
    from omegaconf import OmegaConf

    from .data import TensorData
    from .models import build_model
    from .optim import build_optimizer
    from .settings import RunSettings
    from .training import population, stack_settings

    cfg = OmegaConf.to_container(config, resolve=True)
    autocast = RunSettings.from_config({**cfg, "device": "cpu"}).autocast
    members = population(cfg)[:members]
    shape = INPUT_SHAPES[cfg["data"]["name"]]
    batch = int(cfg["trainer"]["batch_size"])
    x, y = torch.rand(batch, *shape), torch.randint(0, 10, (batch,))
    model = build_model(cfg["model"], TensorData(x, y, x, y, 10), [m["seed"] for m in members])
    optimizer = build_optimizer(model.parameters(), stack_settings(members))

    def step() -> None:
        with autocast():
            cost = model.cost(x, y)
        optimizer.zero_grad(set_to_none=True)
        cost.sum().backward()
        optimizer.step()

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def plan(data_root: str, measure: bool) -> str:
    lines = [
        "| protocol | run | members | steps | matmul GFLOP/step | ops/step | CPU s/step "
        "| CPU hours | H100 projection |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    totals: dict[str, list[float]] = {}
    for protocol in PROTOCOLS:
        for run in protocol.runs:
            config = compose_run(protocol, run, data_root, [], tiny=False)
            cost = step_cost(config)
            n_train = TRAINING_SET[config.data.name]
            steps = int(config.trainer.epochs) * math.ceil(n_train / int(config.trainer.batch_size))
            gpu = (
                cost["flops"] / H100_MATMUL
                + cost["parameters"] * BYTES_PER_PARAMETER / H100_MEMORY
                + cost["ops"] * LAUNCH
            )
            cpu = measure_cpu(config) if measure else math.nan
            totals.setdefault(protocol.name, [0.0, 0.0])
            totals[protocol.name][0] += cpu * steps
            totals[protocol.name][1] += gpu * steps
            lines.append(
                f"| {protocol.name} | {run.name} | {cost['members']:.0f} | {steps:,} "
                f"| {cost['flops'] / 1e9:.2f} | {cost['ops']:.0f} | {cpu:.3g} "
                f"| {cpu * steps / 3600:.1f} | {gpu * steps / 60:.1f} min |"
            )
    lines.append("")
    for name, (cpu, gpu) in totals.items():
        lines.append(
            f"- {name}: {cpu / 3600:.1f} CPU hours; projected {gpu / 60:.0f} min on one "
            f"H100 ({math.ceil(gpu / 60 / 9)} pieces of 9 minutes)"
        )
    lines.append(
        f"\nProjection per step = FLOPs / {H100_MATMUL / 1e12:.0f} TFLOP/s (float32 matmuls at "
        f"'highest' precision) + parameters x {BYTES_PER_PARAMETER} B / {H100_MEMORY / 1e12:.0f} "
        f"TB/s (the update's passes) + operations x {LAUNCH * 1e6:.0f} us (eager dispatch): "
        "assumptions, not measurements."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("runbook", __doc__)
    parser.add_argument("--runs", type=Path, default=Path("outputs/gpu"))
    parser.add_argument("--data-root", default=None, help="default: ADAMREPRO_DATA, else data")
    parser.add_argument("--minutes", type=float, default=9.0, help="time budget of this piece")
    parser.add_argument("--only", nargs="+", choices=list(BY_NAME), help="these protocols only")
    parser.add_argument("--override", nargs="+", default=[], help="Hydra overrides for every run")
    parser.add_argument("--parallel", type=int, default=1, help="a protocol's runs at once")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: check the machinery")
    parser.add_argument("--status", action="store_true", help="where each protocol stands")
    parser.add_argument("--collect", type=Path, help="pack records and logs into this .tar.gz")
    parser.add_argument("--figures", action="store_true", help="draw the complete protocols")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--plan", action="store_true", help="each protocol's cost, projected")
    parser.add_argument("--measure", action="store_true", help="with --plan: time CPU steps")
    args = parser.parse_args(argv)
    import os

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("adamrepro").setLevel(logging.DEBUG)  # files get all; stderr warnings
    logging.getLogger().handlers[0].setLevel(logging.INFO)

    data_root = args.data_root or os.environ.get("ADAMREPRO_DATA", "data")
    try:
        if args.plan:
            print(plan(data_root, args.measure))
        elif args.status:
            print(status_table(args.runs, {})[0])
        elif args.collect:
            print(f"{collect(args.runs, args.collect)} runs packed into {args.collect}")
        elif args.figures:
            drawn = figures(args.runs, args.results)
            print(f"drew {', '.join(drawn) or 'nothing (no protocol is complete)'}")
        elif run_pieces(
            args.runs, data_root, args.minutes, args.only, args.override, args.tiny, args.parallel
        ):
            print("all done")
        else:
            print("not done: run the same command again to continue")
            sys.exit(75)
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
