"""The long half of the paper on a CPU, in units that survive: Figure 2 (a) at 200 passes,
Figure 4's 100-epoch block, Figure 3 at 46 passes.

    python -m adamrepro.long_runs [--data-root DIR] [--minutes 100] [--commit] [--until-done]
                                  [--threads 1] [--only PROTOCOL|PROTOCOL/UNIT ...]
    python -m adamrepro.long_runs --status
    python -m adamrepro.long_runs --figures

A *unit* is one whole run (one population of the training loop) that completes in at most
about 100 minutes on two idle cores. The moment it completes, its record (record.json and
train.log, a few hundred kB) is copied into `results/<figure>/runs/<protocol>/<unit>/`; its
checkpoints stay in --work (default outputs/long), out of git.

Without --status or --figures the command takes the first unit whose record is not under
results/ yet, continues it (from its checkpoint when the work folder is still there, else from
its start) and trains it to its end, or until --minutes are spent (exit 75: the same command
continues). `--commit` then commits the record at once (`git add` and `git commit` of that
folder, with the command and the wall time in the message). A unit that ends failed (every
member diverged) is recorded too: that is its result. `--status` prints every unit, done, in
progress (at which epoch, and whether a runner holds it) or to do, with the hours left on two
cores (each unit's own estimate until units of its protocol are done, then their CPU time over
two per member-epoch, times what is left of each unit: wall times count whatever else ran
beside);
`--figures` draws each figure whose units are all in.

Several runners may work side by side (`make long-runs RUNNERS=2`): each claims the unit it
trains with a lock file beside the unit's work folder (released when the runner ends, however
it ends), takes the first unit that no other runner holds, and commits under a common lock. Two
runners of one thread each train Figure 4's and Figure 2 (a)'s units about 1.2x faster in all
than one runner of two threads; Figure 3's convolutions use both threads well (1.1x at best,
and each unit then takes twice as long): one runner for those (results/bench.md, "Runners side by
side").

The units are the runs of each protocol's `units` variant (configs/protocol/<figure>.yaml says
their settings and why); `make long-runs` runs this niced, so that other work on the machine
comes first.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .errors import USER_ERRORS, command_parser
from .protocol import Protocol, every_variant, run_log
from .records import RECORD_NAME, read_record

RESULTS = Path("results")


@dataclass(frozen=True)
class Unit:
    protocol: str  # its folder under results/<figure>/runs/ (the variant's name)
    figure: str
    name: str
    overrides: tuple[str, ...]
    minutes: float  # estimated on two idle cores (results/bench.md), until measured


# The protocols' `units` variants (configs/protocol/*.yaml say each one's settings and why),
# in the order they run: Figure 4 first (its 10-epoch block is set beside the committed one).
ORDER = ("fig4", "fig2a", "fig3")


def _protocols() -> dict[str, Protocol]:
    variants = {p.name: p for p in every_variant() if p.units}
    return {
        n: variants[n]
        for n in [*[n for n in ORDER if n in variants], *sorted(set(variants) - set(ORDER))]
    }


PROTOCOLS = _protocols()
UNITS = [
    Unit(name, protocol.figure, run.name, tuple(protocol.overrides(run)), run.minutes or 100.0)
    for name, protocol in PROTOCOLS.items()
    for run in protocol.runs
]


def record_folder(unit: Unit, results: Path = RESULTS) -> Path:
    return results / unit.figure / "runs" / unit.protocol / unit.name


def done(unit: Unit, results: Path = RESULTS) -> dict | None:
    """The unit's record under results/, when it is there and ended (completed or failed)."""
    record = read_record(record_folder(unit, results))
    return record if record is not None and record["status"] in ("completed", "failed") else None


def unit_config(unit: Unit, *extra: str):
    """The unit's composed config: its overrides (named after its protocol), then `extra`."""
    from .protocol import merge
    from .training import compose_config

    return compose_config(merge([f"experiment_name={unit.protocol}"], unit.overrides, extra))


def run_unit(
    unit: Unit, work: Path, data_root: str, minutes: float | None, extra: list[str]
) -> dict:
    from .training import train

    config = unit_config(
        unit,
        f"data.root={data_root}",
        "trainer.progress=false",
        "trainer.checkpoint_minutes=5",
        *([f"trainer.max_minutes={minutes}"] if minutes is not None else []),
        *extra,
    )
    folder = work / unit.protocol / unit.name
    with run_log(folder):
        return train(config, folder)


def keep_record(unit: Unit, work: Path, results: Path) -> Path:
    target = record_folder(unit, results)
    target.mkdir(parents=True, exist_ok=True)
    for name in (RECORD_NAME, "train.log"):
        source = work / unit.protocol / unit.name / name
        if source.is_file():
            shutil.copyfile(source, target / name)
    return target


def claim(unit: Unit, work: Path) -> FileLock | None:
    """The unit's lock, held by this runner; None when another runner holds it. The lock is the
    operating system's (fcntl), so a runner that dies, however, releases it."""
    path = work / unit.protocol / f"{unit.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def commit(folder: Path, unit: Unit, record: dict, command: str) -> None:
    minutes = record["wall_time_s"] / 60
    message = (
        f"long-run unit {unit.protocol}/{unit.name}: {record['status']}, "
        f"{minutes:.0f} min of training ({command})"
    )
    subprocess.run(["git", "add", str(folder)], check=True)
    subprocess.run(["git", "commit", "-q", "-m", message, "--", str(folder)], check=True)


def cost_minutes(record: dict) -> float | None:
    """A unit's cost on two idle cores, from its record: its CPU time (over its threads) over
    two; None for records older than that field, whose wall time counts whatever else the
    machine ran beside them (a niced unit beside foreground work: 3-6x its cost)."""
    cpu = record.get("cpu_time_s")
    return None if cpu is None else cpu / 60 / 2


def member_epochs(unit: Unit) -> float:
    """The member-epochs the unit trains: its population times its epochs, the population cut
    to the kept settings after the halving epoch where the unit halves it."""
    from .settings import Halving
    from .training import population

    config = unit_config(unit)
    members, epochs = len(population(config)), config.trainer.epochs
    halving = Halving.from_config(config.sweep)
    if halving is None:
        return float(members * epochs)
    kept = min(members, halving.keep * len(config.sweep.seeds))
    after = min(epochs, halving.after_epochs)
    return float(members * after + kept * (epochs - after))


def progress(unit: Unit, work: Path) -> tuple[float, str] | None:
    """The share of a unit not done yet that its work folder holds, and its state in words
    (whether a runner holds it now); None when it has not started."""
    record = read_record(work / unit.protocol / unit.name)
    if record is None or not record.get("curves"):
        return None
    epoch = max(row["epoch"] for row in record["curves"])
    epochs = record["config"]["trainer"]["epochs"]
    lock = claim(unit, work)
    if lock is not None:
        lock.release()
    held = "a runner trains it" if lock is None else "no runner: the command continues it"
    return min(1.0, epoch / epochs), f"at epoch {epoch} of {epochs} ({held})"


def status(results: Path = RESULTS, work: Path = Path("outputs/long")) -> str:
    """Every unit, done or to do, and the hours left on two cores: the CPU time of the
    protocol's units done over their member-epochs (over two cores), times the member-epochs
    of each unit left and the share of it not trained yet; each unit's own estimate until a
    unit of its protocol is done."""
    lines, left = [], 0.0
    for protocol in dict.fromkeys(u.protocol for u in UNITS):
        units = [u for u in UNITS if u.protocol == protocol]
        records = {u: done(u, results) for u in units}
        measured = [
            (cost, member_epochs(u))
            for u, r in records.items()
            if r is not None and (cost := cost_minutes(r))
        ]
        rate = sum(c for c, _ in measured) / sum(e for _, e in measured) if measured else None
        todo = [u for u in units if records[u] is None]
        states = {u: progress(u, work) for u in todo}
        hours = (
            sum(
                (rate * member_epochs(u) if rate else u.minutes)
                * (1 - (states[u][0] if states[u] else 0.0))
                for u in todo
            )
            / 60
        )
        left += hours
        lines.append(
            f"{protocol:6s} {len(units) - len(todo)}/{len(units)} units done, "
            f"{hours:.1f} hours left on two cores ("
            + (
                f"CPU time / 2 per member-epoch of the {len(measured)} done"
                if rate
                else "estimated"
            )
            + ")"
        )
        for u in units:
            record, state = records[u], "to do"
            if record:
                state = f"{record['status']}, {record['wall_time_s'] / 60:.0f} min wall"
                if (cost := cost_minutes(record)) is not None:
                    state += f", {2 * cost:.0f} CPU-min"
            elif states.get(u):
                state = states[u][1]
            lines.append(f"  {u.name:32s} {state}")
    lines.append(f"total: {left:.1f} hours left on two cores")
    return "\n".join(lines)


def figures(results: Path = RESULTS) -> list[str]:
    """Draw the figures of each protocol whose units are all in, from their records."""
    from .figures.plot import make_figure

    drawn = []
    for name, protocol in PROTOCOLS.items():
        units = [u for u in UNITS if u.protocol == name]
        if any(done(u, results) is None for u in units):
            continue
        runs = results / protocol.figure / "runs" / name
        for drawing in protocol.draws:
            make_figure(
                drawing.figure,
                [str(runs)],
                results / drawing.out,
                drawing.note,
                drawing.xlim,
                drawing.ylim,
            )
            drawn.append(drawing.out)
    return drawn


def plan(results: Path = RESULTS) -> str:
    """Each unit's cost on this CPU: its step timed in its precision (on random inputs, as
    `runbook.measure_cpu`), times its steps, the population halved where the unit halves it,
    and its evaluations (one forward pass over the training and test sets, counted as a
    third of a training step per minibatch); beside it the wall time of the units done.
    Members that diverge leave the population: not counted in advance."""
    import math

    from .runbook import TRAINING_SET, measure_cpu
    from .settings import Halving
    from .training import population

    lines = [
        "| protocol | unit | members | precision | s/step | estimate (min) | measured (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    totals: dict[str, list[float]] = {}
    for unit in UNITS:
        config = unit_config(unit)
        cfg = config.trainer
        members = len(population(config))
        n = TRAINING_SET[config.data.name]
        steps = math.ceil(n / cfg.batch_size)
        full = measure_cpu(config)
        halving = Halving.from_config(config.sweep)
        seconds = full * steps * cfg.epochs
        shown = f"{members}"
        if halving is not None and halving.keep * len(config.sweep.seeds) < members:
            kept = halving.keep * len(config.sweep.seeds)
            after = measure_cpu(config, members=kept)
            seconds = steps * (
                full * halving.after_epochs + after * (cfg.epochs - halving.after_epochs)
            )
            shown = f"{members} -> {kept} after {halving.after_epochs}"
        evaluations = math.ceil(cfg.epochs / cfg.eval_every)
        seconds += evaluations * (n + 10_000) / cfg.batch_size * full / 3
        record = done(unit, results)
        measured = record["wall_time_s"] / 60 if record else math.nan
        totals.setdefault(unit.protocol, [0.0, 0.0])
        totals[unit.protocol][0] += seconds / 60
        totals[unit.protocol][1] += 0.0 if math.isnan(measured) else measured
        lines.append(
            f"| {unit.protocol} | {unit.name} | {shown} | {config.precision} "
            f"| {full:.3g} | {seconds / 60:.0f} | "
            + ("" if math.isnan(measured) else f"{measured:.0f}")
            + " |"
        )
    lines.append("")
    for protocol, (estimate, measured) in totals.items():
        lines.append(
            f"- {protocol}: {estimate / 60:.1f} CPU-hours estimated; "
            f"{measured / 60:.1f} measured over the units done"
        )
    total = sum(e for e, _ in totals.values()) / 60
    lines.append(f"- all: {total:.1f} CPU-hours estimated")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("long_runs", __doc__)
    parser.add_argument("--data-root", default=None, help="default: ADAMREPRO_DATA, else data")
    parser.add_argument("--work", type=Path, default=Path("outputs/long"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--minutes", type=float, default=None, help="time budget of this call")
    parser.add_argument(
        "--only",
        nargs="+",
        help="these protocols (fig4, fig2a, fig3) or units (fig2a/adam_next) only",
    )
    parser.add_argument("--override", nargs="+", default=[], help="Hydra overrides for a unit")
    parser.add_argument("--commit", action="store_true", help="git commit each finished unit")
    parser.add_argument(
        "--until-done",
        action="store_true",
        help="go on to the next unit after each, until all are done (with --commit: the "
        "background job of every session)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 for runners side by side)"
    )
    parser.add_argument("--status", action="store_true")
    parser.add_argument("--figures", action="store_true")
    parser.add_argument("--plan", action="store_true", help="each unit's cost, timed here")
    args = parser.parse_args(argv)
    import os

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("adamrepro").setLevel(logging.DEBUG)  # train.log gets all
    logging.getLogger().handlers[0].setLevel(logging.INFO)
    if args.status:
        print(status(args.results, args.work))
        return
    if args.plan:
        print(plan(args.results))
        return
    if args.figures:
        print(f"drew {', '.join(figures(args.results)) or 'nothing (no figure is complete)'}")
        return
    data_root = args.data_root or os.environ.get("ADAMREPRO_DATA", "data")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    command = "python -m adamrepro.long_runs " + " ".join(argv or sys.argv[1:])
    try:
        while True:
            left = next_unit(args, data_root, command.strip())
            if not args.until_done or left == 0:
                return
    except KeyboardInterrupt:  # the unit's checkpoint is written before this reaches us
        print(
            f"interrupted: the unit's checkpoint is in {args.work}; the same command continues it",
            file=sys.stderr,
        )
        sys.exit(130)


def next_unit(args: Any, data_root: str, command: str) -> int:
    """Train the first unit that is neither done nor held by another runner to its end and keep
    its record; the units left after it, 0 when every unit left is held by other runners (exit
    75 when the budget ran out first: the same command continues it)."""
    todo = [
        u
        for u in UNITS
        if done(u, args.results) is None
        and (not args.only or {u.protocol, f"{u.protocol}/{u.name}"} & set(args.only))
    ]
    if not todo:
        print("all units done")
        return 0
    for unit in todo:
        lock = claim(unit, args.work)
        if lock is None:
            continue
        if done(unit, args.results) is not None:  # completed by another runner meanwhile
            lock.release()
            continue
        try:
            train_unit(unit, args, data_root, command)
        finally:
            lock.release()
        print(f"{len(todo) - 1} units left: run the same command for the next", flush=True)
        return len(todo) - 1
    print(f"the {len(todo)} units left are all being trained by other runners")
    return 0


def train_unit(unit: Unit, args: Any, data_root: str, command: str) -> None:
    """Train the unit (claimed by this runner) and keep its record (exit 75 when the budget ran
    out first)."""
    print(f"unit {unit.protocol}/{unit.name} (about {unit.minutes:.0f} min)", flush=True)
    started = time.monotonic()
    try:
        record = run_unit(unit, args.work, data_root, args.minutes, args.override)
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    if record["status"] not in ("completed", "failed"):
        print(f"{unit.protocol}/{unit.name}: {record['status']}; the same command continues it")
        sys.exit(75)
    folder = keep_record(unit, args.work, args.results)
    print(
        f"{unit.protocol}/{unit.name}: {record['status']} in "
        f"{(time.monotonic() - started) / 60:.1f} min; record in {folder}"
    )
    if args.commit:
        with FileLock(args.work / "commit.lock"):
            commit(folder, unit, record, command)


if __name__ == "__main__":
    main()
