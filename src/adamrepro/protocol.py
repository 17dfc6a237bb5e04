"""A figure's protocol, from its one file `configs/protocol/<figure>.yaml`: the runs that feed
the figure, how the figure is drawn from them, and its variants.

    python -m adamrepro.protocol TARGET [--variant NAME] [--runs DIR] [--results DIR]
        [--data-root DIR] [--minutes N] [--override KEY=VALUE ...] [--only RUN ...]
        [--restart] [--no-draw]
    python -m adamrepro.protocol --list | --status TARGET

TARGET is a protocol's file name (`fig1_mnist_logreg`) or its `make` name (`mnist`; `mlp` names
Figure 2 (a) and (b) together), optionally with a variant after a dash (`mlp-cpu`). The command
trains each run of the variant into `RUNS/<figure>/<variant>/<run>` (a run that is there
continues; a complete one is read back), then draws the variant's figures into RESULTS. A time
budget (`--minutes`) pauses the run in hand at its next checkpoint: exit 75, and the same
command continues. Missing data or a bad setting is one line and exit 2.

A protocol file says, in the paper's variant (its top level):
- `runs`: name -> {overrides, [matrix], [minutes]}; a `matrix` (axis -> values; a value that is
  a mapping sets several names) makes one run per combination, its `{names}` filled into the
  run's name and overrides;
- `draw`: the figures drawn from the runs (`figure` under experiments/, `out` under RESULTS,
  `note`, axes `xlim`/`ylim`, and `also`: other runs folders under RUNS);
- `overrides` for every run, `title`, `make`, `data` (checked before the first run), `cost`;
- `gpu` (its name in the GPU runbook) and, in a variant, `units: true` (run unit by unit by
  `adamrepro.long_runs`) and `name` (the runs' experiment name; default: the file's name, with
  the variant's after an underscore).
A variant (`variants: {name: {...}}`) replaces `runs` and `draw` where it gives them and adds
its `overrides` to every run (an override of a key a run sets already replaces it); `gpu`,
`units`, `name` and `cost` belong to the variant that states them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import USER_ERRORS, ConfigError, command_parser
from .records import epochs_done, read_record

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "configs" / "protocol"
PAPER = "paper"  # the variant at a protocol file's top level
EXIT_PAUSED = 75
OWN_KEYS = ("gpu", "units", "name", "cost")  # a variant's own, not inherited from the paper's
KEYS = {"title", "make", "data", "runs", "draw", "overrides", "variants", *OWN_KEYS}


@dataclass(frozen=True)
class Run:
    name: str  # its folder under the variant's
    overrides: tuple[str, ...]
    minutes: float | None = None  # its estimated wall time on two idle CPU cores


@dataclass(frozen=True)
class Drawing:
    figure: str  # a folder under experiments/
    out: str  # a folder under the results
    note: str = ""
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    also: tuple[str, ...] = ()  # further runs folders, under the runs root, drawn when there


@dataclass(frozen=True)
class Protocol:
    """One variant of one figure's protocol."""

    figure: str  # the protocol file's name
    variant: str
    name: str  # the runs' experiment_name
    title: str
    make: str
    data: str
    runs: tuple[Run, ...]
    draws: tuple[Drawing, ...]
    cost: str = ""
    gpu: str | None = None
    units: bool = False
    extra: tuple[str, ...] = field(default=(), compare=False)  # overrides added by the caller

    def run(self, name: str) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise ConfigError(
            f"{self.figure} ({self.variant}) has no run {name!r} "
            f"(its runs: {', '.join(r.name for r in self.runs)})"
        )

    def overrides(self, run: Run, *extra: str) -> list[str]:
        """The run's overrides as the training loop composes them: its own, the caller's, then
        `extra`, each later one replacing an earlier one of the same key."""
        return merge(run.overrides, (f"experiment_name={self.name}",), self.extra, extra)

    def compose(self, run: Run, *extra: str):
        from .training import compose_config

        return compose_config(self.overrides(run, *extra))

    def folder(self, runs: Path, run: Run) -> Path:
        return Path(runs) / self.figure / self.variant / run.name

    def with_overrides(self, *extra: str) -> Protocol:
        return replace(self, extra=(*self.extra, *extra))


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge(*lists: Sequence[str]) -> list[str]:
    """Overrides in order, a later one replacing an earlier one of the same key in its place."""
    out: dict[str, str] = {}
    for overrides in lists:
        for override in overrides:
            out[_key(override)] = override
    return list(out.values())


def _expand(name: str, spec: Mapping[str, Any], where: str) -> list[Run]:
    unknown = set(spec) - {"overrides", "matrix", "minutes"}
    if unknown:
        raise ConfigError(f"{where}: run {name!r} has unknown keys {sorted(unknown)}")
    matrix = spec.get("matrix") or {}
    rows: list[dict[str, Any]] = [{}]
    for axis, values in matrix.items():
        rows = [
            {**row, **(value if isinstance(value, Mapping) else {axis: value})}
            for row in rows
            for value in values
        ]
    runs = []
    for row in rows:
        try:
            runs.append(
                Run(
                    name.format(**row),
                    tuple(str(o).format(**row) for o in spec.get("overrides", [])),
                    spec.get("minutes"),
                )
            )
        except (KeyError, IndexError) as error:
            raise ConfigError(
                f"{where}: run {name!r} names {error} that its matrix lacks"
            ) from None
    return runs


def files() -> dict[str, Path]:
    """The protocol files, in the paper's order (by their titles: Figure 1 (left) first)."""
    from omegaconf import OmegaConf

    paths = sorted(PROTOCOL_DIR.glob("*.yaml"))
    titles = {p: str(OmegaConf.load(p).get("title", p.stem)) for p in paths}
    return {p.stem: p for p in sorted(paths, key=lambda p: titles[p])}


def _read(figure: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    known = files()
    if figure not in known:
        raise ConfigError(f"no protocol {figure!r} (known: {', '.join(known)})")
    spec: dict[str, Any] = OmegaConf.to_container(OmegaConf.load(known[figure]))  # type: ignore[assignment]
    unknown = set(spec) - KEYS
    if unknown:
        raise ConfigError(f"{known[figure]}: unknown keys {sorted(unknown)}")
    return spec


def variant_overrides(figure: str, variant: str) -> list[str]:
    """The overrides a variant adds to every run (a `tiny` variant's, to shrink another's)."""
    spec = _read(figure)
    part = spec if variant == PAPER else (spec.get("variants") or {}).get(variant) or {}
    return list(part.get("overrides") or [])


def variants(figure: str) -> list[str]:
    return [PAPER, *(_read(figure).get("variants") or {})]


def load(figure: str, variant: str = PAPER) -> Protocol:
    spec = _read(figure)
    where = f"configs/protocol/{figure}.yaml"
    own: dict[str, Any] = {k: spec.get(k) for k in OWN_KEYS}
    overrides = list(spec.get("overrides") or [])
    if variant != PAPER:
        known = spec.get("variants") or {}
        if variant not in known:
            raise ConfigError(
                f"{figure} has no variant {variant!r} (its variants: {', '.join(variants(figure))})"
            )
        part = known[variant] or {}
        unknown = set(part) - (KEYS - {"variants"})
        if unknown:
            raise ConfigError(f"{where}: variant {variant!r} has unknown keys {sorted(unknown)}")
        own = {k: part.get(k) for k in OWN_KEYS}
        overrides += part.get("overrides") or []
        spec = {**spec, **{k: part[k] for k in ("runs", "draw") if k in part}}
    runs = [
        run
        for name, run_spec in (spec.get("runs") or {}).items()
        for run in _expand(str(name), run_spec or {}, where)
    ]
    runs = [replace(run, overrides=tuple(merge(run.overrides, overrides))) for run in runs]
    if len({run.name for run in runs}) < len(runs):
        raise ConfigError(f"{where} ({variant}): two runs have the same name")
    draws = tuple(
        Drawing(
            figure=d["figure"],
            out=d.get("out", d["figure"]),
            note=" ".join(str(d.get("note", "")).split()),
            xlim=tuple(d["xlim"]) if d.get("xlim") else None,
            ylim=tuple(d["ylim"]) if d.get("ylim") else None,
            also=tuple(d.get("also", ())),
        )
        for d in spec.get("draw") or []
    )
    default_name = figure if variant == PAPER else f"{figure}_{variant}"
    return Protocol(
        figure=figure,
        variant=variant,
        name=own["name"] or default_name,
        title=spec.get("title", figure),
        make=spec.get("make", figure),
        data=spec.get("data", ""),
        runs=tuple(runs),
        draws=draws,
        cost=own["cost"] or "",
        gpu=own["gpu"],
        units=bool(own["units"]),
    )


def every_variant() -> Iterator[Protocol]:
    for figure in files():
        for variant in variants(figure):
            yield load(figure, variant)


def resolve(target: str, variant: str | None = None) -> list[Protocol]:
    """The protocols a target names: a file's name or its `make` name (several files may share
    one: those that have the variant), with `-VARIANT` or `variant`."""
    figures = list(files())
    makes = {figure: _read(figure).get("make", figure) for figure in figures}
    splits = [(target[:i], target[i + 1 :]) for i, c in enumerate(target) if c == "-"]
    for name, chosen in [(target, variant or PAPER), *[(n, variant or v) for n, v in splits]]:
        found = [f for f in figures if name in (f, makes[f])]
        if not found:
            continue
        having = [f for f in found if chosen in variants(f)]
        if not having:
            raise ConfigError(
                f"{name} has no variant {chosen!r} (its variants: "
                f"{', '.join(dict.fromkeys(v for f in found for v in variants(f)))})"
            )
        return [load(f, chosen) for f in having]
    raise ConfigError(
        f"no protocol {target!r} (known: {', '.join(sorted({*figures, *makes.values()}))})"
    )


# -- running ----------------------------------------------------------------------------------
@contextmanager
def run_log(folder: Path) -> Iterator[None]:
    """The run's train.log, as a Hydra run writes it: every message of the loop, appended."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    logger = logging.getLogger("adamrepro")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def check_data(protocol: Protocol, data_root: str) -> str:
    """Load the data set of the protocol's first run once: missing or damaged data is one
    line before any run starts, not one per run."""
    from .data import load_data

    config = protocol.compose(protocol.runs[0], f"data.root={data_root}")
    described = load_data(config.data).description
    where = described.get("path") or described.get("source")
    return f"{described.get('label', config.data.name)} ({where})"


def run_state(folder: Path) -> tuple[str, int, int]:
    """(status, epochs done, epochs) of the run in `folder` ("not started": no record)."""
    record = read_record(folder)
    if record is None:
        return "not started", 0, 0
    return record["status"], epochs_done(record), int(record["config"]["trainer"]["epochs"])


def status(protocol: Protocol, runs: Path) -> list[tuple[Run, str, int, int]]:
    """(run, status, epochs done, epochs) for each run of the protocol."""
    return [(run, *run_state(protocol.folder(runs, run))) for run in protocol.runs]


def train_runs(
    protocol: Protocol,
    runs: Path,
    data_root: str,
    minutes: float | None = None,
    only: Sequence[str] = (),
    restart: bool = False,
    started: float | None = None,
) -> bool:
    """Train (or continue) the protocol's runs in order; True when every one has ended."""
    import shutil

    from .training import train

    started = time.monotonic() if started is None else started
    budget = [f"trainer.max_minutes={minutes}"] if minutes is not None else []
    ended = True
    for run in protocol.runs:
        if only and not any(run.name == o or run.name.startswith(f"{o}/") for o in only):
            continue
        folder = protocol.folder(runs, run)
        if restart and folder.exists():
            shutil.rmtree(folder)
        config = protocol.compose(run, f"data.root={data_root}", *budget)
        with run_log(folder):
            record = train(config, folder, started=started)
        print(f"{protocol.figure}/{protocol.variant}/{run.name}: {record['status']}", flush=True)
        if record["status"] not in ("completed", "failed"):
            ended = False
            break
    return ended


def draw(protocol: Protocol, runs: Path, results: Path) -> list[Path]:
    from .figures.plot import make_figure

    drawn = []
    for drawing in protocol.draws:
        sources = [str(Path(runs) / protocol.figure / protocol.variant)]
        sources += [str(Path(runs) / a) for a in drawing.also if (Path(runs) / a).exists()]
        out = Path(results) / drawing.out
        make_figure(drawing.figure, sources, out, drawing.note, drawing.xlim, drawing.ylim)
        drawn.append(out)
    return drawn


def listing() -> str:
    """A line per `make reproduce-...` target: the protocols it runs and what they cost."""
    targets: dict[str, list[str]] = {}
    for figure in files():
        for variant in variants(figure):
            protocol = load(figure, variant)
            target = protocol.make + ("" if variant == PAPER else f"-{variant}")
            targets.setdefault(target, []).append(
                figure
                + ("" if variant == PAPER else f" {variant}")
                + (f" ({protocol.cost})" if protocol.cost else "")
            )
    return "\n".join(f"  make reproduce-{t:26s} {' + '.join(ps)}" for t, ps in targets.items())


def main(argv: list[str] | None = None) -> None:
    import os

    parser = command_parser("protocol", __doc__)
    parser.add_argument("target", nargs="?")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--runs", type=Path, default=Path("outputs"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--data-root", default=None, help="default: ADAMREPRO_DATA, else data")
    parser.add_argument("--minutes", type=float, default=None, help="time budget of this call")
    parser.add_argument("--override", nargs="+", default=[], help="Hydra overrides for every run")
    parser.add_argument("--only", nargs="+", default=[], help="these runs only (a name or prefix)")
    parser.add_argument("--restart", action="store_true", help="delete the runs first")
    parser.add_argument("--no-draw", action="store_true")
    parser.add_argument("--list", action="store_true", help="every protocol and variant")
    parser.add_argument("--status", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("adamrepro").setLevel(logging.DEBUG)  # each run's train.log gets all
    if not logging.getLogger().handlers:  # the console: what each run does, not each epoch
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger().handlers[0].setLevel(logging.INFO)
    if args.list:
        print(listing())
        return
    if not args.target:
        parser.error("a TARGET (or --list) is needed")
    data_root = args.data_root or os.environ.get("ADAMREPRO_DATA", "data")
    started = time.monotonic()
    try:
        protocols = [p.with_overrides(*args.override) for p in resolve(args.target, args.variant)]
        if args.status:
            for protocol in protocols:
                for run, state, done, epochs in status(protocol, args.runs):
                    print(
                        f"{protocol.figure}/{protocol.variant}/{run.name}: {state}"
                        + (f", {done}/{epochs} epochs" if epochs else "")
                    )
            return
        for protocol in protocols:
            print(
                f"{protocol.title} ({protocol.variant}): data {check_data(protocol, data_root)}",
                flush=True,
            )
        for protocol in protocols:
            if not train_runs(
                protocol, args.runs, data_root, args.minutes, args.only, args.restart, started
            ):
                print("paused: the same command continues")
                sys.exit(EXIT_PAUSED)
        if not args.no_draw:
            for protocol in protocols:
                for out in draw(protocol, args.runs, args.results):
                    print(f"drew {out}")
    except (*USER_ERRORS, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
