"""A user's optimizer as the benchmark reads it: one YAML that names the optimizer, gives its
label and defaults, and declares its search space and trial budget up front (as AlgoPerf's
tuning files do).

    _target_: path/to/my_optimizer.py:MyOptimizer   # or package.module.Class
    label: MyOptimizer
    extra: null              # the optional extra of this project that installs its package
    stepsize_key: lr         # the setting the task's stepsize decay scales (null: none)
    elementwise: true        # false: one member per run (its step couples a tensor's elements)
    defaults: {lr: 1.0e-3, weight_decay: 0.0}
    search_space:            # per setting: a list of values, or a range on a scale
      lr: {min: 1.0e-4, max: 1.0e-1, scale: log, points: 7}
      betas: {values: [[0.9, 0.999], [0.9, 0.99]]}
    trials: 14               # at most the paper's optimizers' budget on every task
    reduces_to:              # settings under which it is one of ours (the conformance check)
      adam: {settings: {weight_decay: 0.0}, ours: {}}

The class is a `torch.optim.Optimizer` (torch's, a package's, a user's own), trained one
setting per run, or a `PaperOptimizer` (this project's init/update API), whose whole grid
trains as one population. The trials are the grid of the search space's points, every one of
them; the budget is checked against each task's before anything trains.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import CONFIG_DIR
from ..errors import ConfigError
from ..optim import PaperOptimizer, load_target

# Ours: the config groups of configs/optimizer (each names its class and the paper's settings)
OURS = sorted(
    p.stem for p in (Path(CONFIG_DIR) / "optimizer").glob("*.yaml") if p.stem != "external"
)
KNOWN_KEYS = {
    "_target_",
    "name",
    "label",
    "extra",
    "stepsize_key",
    "elementwise",
    "defaults",
    "search_space",
    "trials",
    "reduces_to",
    "notes",
}
SCALES = ("log", "linear")
REDUCTIONS = ("adam", "sgd")


@dataclass(frozen=True)
class Dimension:
    """One searched setting and the points the grid takes on it."""

    name: str
    points: tuple[Any, ...]


@dataclass(frozen=True)
class OptimizerSpec:
    label: str
    target: str | None  # a class to import; None: one of ours by `name`
    name: str | None  # one of ours: its config group (configs/optimizer/<name>.yaml)
    defaults: dict[str, Any]
    space: tuple[Dimension, ...]
    trials: int
    stepsize_key: str | None = "lr"
    elementwise: bool = True
    extra: str | None = None
    reduces_to: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: Path | None = None
    notes: str = ""

    @property
    def population(self) -> bool:
        """Whether its grid trains as one population (this project's optimizer API)."""
        if self.target is None:
            return True
        return issubclass(load_target(self.target, self.extra), PaperOptimizer)

    def grid(self) -> list[dict[str, Any]]:
        """Every trial: one point of each dimension."""
        names = [d.name for d in self.space]
        return [
            dict(zip(names, point, strict=True))
            for point in itertools.product(*(d.points for d in self.space))
        ]

    def optimizer_config(self, point: dict[str, Any] | None = None) -> dict[str, Any]:
        """The training loop's `optimizer` config for one trial (or the defaults)."""
        settings = {**self.defaults, **(point or {})}
        if self.target is None:
            return {**our_optimizer(str(self.name)), "label": self.label, **settings}
        return {
            "name": "external",
            "label": self.label,
            "_target_": self.target,
            "stepsize_key": self.stepsize_key,
            "elementwise": self.elementwise,
            "extra": self.extra,
            **settings,
        }


def our_optimizer(group: str) -> dict[str, Any]:
    """The optimizer config of one of ours, as `optimizer=<group>` composes it."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(
        OmegaConf.load(Path(CONFIG_DIR) / "optimizer" / f"{group}.yaml")
    )
    return dict(config)  # type: ignore[arg-type]


def load_spec(path: str | Path) -> OptimizerSpec:
    """Read and check an optimizer's YAML; every problem is one ConfigError line. A relative
    `_target_` file is read relative to the YAML's folder."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no optimizer file {path}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (YAMLError, OmegaConfBaseException) as error:
        raise ConfigError(f"{path} is not YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping (_target_, label, search_space, ...)")
    return spec_from_dict(raw, path)


def spec_from_dict(raw: dict[str, Any], path: Path | None = None) -> OptimizerSpec:
    where = f"{path}: " if path else ""
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}unknown key {', '.join(unknown)} (known: {', '.join(sorted(KNOWN_KEYS))})"
        )
    target, name = raw.get("_target_"), raw.get("name")
    if (target is None) == (name is None):
        raise ConfigError(f"{where}give either _target_ (a class) or name (one of ours)")
    if name is not None and name not in OURS:
        raise ConfigError(f"{where}name {name!r} is none of ours ({', '.join(OURS)})")
    if target is not None:
        target = _resolved(str(target), path)
        load_target(target, raw.get("extra"))  # fails here, in one line, before any training
    label = raw.get("label")
    if not isinstance(label, str) or not label:
        raise ConfigError(f"{where}label must be a non-empty string (the curve's name)")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}defaults must be a mapping of settings")
    space = tuple(_dimension(n, d, where) for n, d in (raw.get("search_space") or {}).items())
    if not space:
        raise ConfigError(f"{where}search_space is empty: declare at least one setting's values")
    trials = raw.get("trials")
    count = math.prod(len(d.points) for d in space)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise ConfigError(f"{where}trials must be a positive whole number, got {trials!r}")
    if count > trials:
        raise ConfigError(
            f"{where}the search space has {count} points, more than its trials ({trials})"
        )
    reduces = raw.get("reduces_to") or {}
    for kind, entry in reduces.items():
        if kind not in REDUCTIONS:
            raise ConfigError(f"{where}reduces_to {kind!r}: choose {' or '.join(REDUCTIONS)}")
        if not isinstance(entry, dict) or not set(entry) <= {"settings", "ours"}:
            raise ConfigError(f"{where}reduces_to.{kind} takes settings: {{...}}, ours: {{...}}")
    return OptimizerSpec(
        label=label,
        target=target,
        name=name,
        defaults=dict(defaults),
        space=space,
        trials=trials,
        stepsize_key=raw.get("stepsize_key", "lr" if target else "stepsize"),
        elementwise=bool(raw.get("elementwise", True)),
        extra=raw.get("extra"),
        reduces_to={k: dict(v) for k, v in reduces.items()},
        source=path,
        notes=str(raw.get("notes", "")),
    )


def _resolved(target: str, path: Path | None) -> str:
    """A file target relative to the YAML's folder, when it is not found as given."""
    if ":" not in target or path is None:
        return target
    file, _, name = target.rpartition(":")
    if not Path(file).is_file() and (path.parent / file).is_file():
        return f"{path.parent / file}:{name}"
    return target


def _dimension(name: str, entry: Any, where: str) -> Dimension:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}search_space.{name} must be {{values: [...]}} or a range")
    if "values" in entry:
        values = entry["values"]
        if set(entry) != {"values"} or not isinstance(values, list) or not values:
            raise ConfigError(f"{where}search_space.{name}.values must be a non-empty list")
        return Dimension(name, tuple(tuple(v) if isinstance(v, list) else v for v in values))
    needed = {"min", "max", "points"}
    if not needed <= set(entry) or not set(entry) <= needed | {"scale"}:
        raise ConfigError(
            f"{where}search_space.{name} needs min, max, points (and scale: log or linear)"
        )
    low, high, points = entry["min"], entry["max"], entry["points"]
    scale = entry.get("scale", "log")
    if scale not in SCALES:
        raise ConfigError(f"{where}search_space.{name}.scale must be log or linear")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"{where}search_space.{name}: min and max must be numbers")
    if not isinstance(points, int) or points < 1:
        raise ConfigError(f"{where}search_space.{name}.points must be a positive whole number")
    if not low <= high or (scale == "log" and low <= 0):
        raise ConfigError(
            f"{where}search_space.{name}: need min <= max"
            + (" and min > 0 on a log scale" if scale == "log" else "")
        )
    if points == 1:
        return Dimension(name, (float(low),))
    if scale == "log":
        step = (math.log10(high) - math.log10(low)) / (points - 1)
        values = [float(f"{10 ** (math.log10(low) + k * step):.4g}") for k in range(points)]
    else:
        values = [float(f"{low + k * (high - low) / (points - 1):.6g}") for k in range(points)]
    return Dimension(name, tuple(values))
