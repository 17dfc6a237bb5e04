"""The run's own settings (the root keys and `trainer`), read once and checked: an unknown key, a
value of the wrong type or out of range is one ConfigError line, never a silent default."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from .errors import ConfigError
from .optim.base import DECAYS

# how an epoch's minibatches are drawn (training.population.MinibatchOrder says each)
MINIBATCH_ORDERS = ("random", "fixed", "replacement")

STEPSIZE_DECAYS = DECAYS  # the optimizers compute alpha_t (optim/base.py)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision
# PyTorch Lightning's names: "32-true" computes everything in the run's dtype; "bf16-mixed"
# runs the forward matmuls and convolutions in bfloat16 (torch.autocast), while parameters,
# gradients, optimizer states and costs stay float32.
PRECISIONS = ("32-true", "bf16-mixed")


MAX_SEED = 2**63 - 1  # what torch's generators take


def seed_setting(name: str, value: Any) -> int:
    """A seed: an integer in [0, 2^63 - 1], else one ConfigError line."""
    seed = _integer(name, value, 0)
    if seed > MAX_SEED:
        raise ConfigError(f"{name} must be at most 2^63 - 1, got {value!r}")
    return seed


def _integer(name: str, value: Any, low: int) -> int:
    integral = (
        (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer())
        or (isinstance(value, str) and value.strip().lstrip("-").isdigit())
    )
    if not integral:
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < low:
        raise ConfigError(f"{name} must be at least {low}, got {number}")
    return number


def _number(name: str, value: Any, low: float, strict: bool = False) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < low or (strict and number == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class TrainerSettings:
    """`trainer.*`: how the loop trains, evaluates, checkpoints and stops."""

    epochs: int = 46
    batch_size: int = 128
    stepsize_decay: str = "none"
    divergence_factor: float = 100.0
    eval_batch_size: int = 2000
    progress: bool = True
    eval_every: int = 1
    step_log_epochs: int = 0
    step_log_parameters: bool = False
    evaluate_averaged: bool = False
    evaluate_initial: bool = False
    train_eval_subset: int = 0
    minibatch_order: str = "random"
    moment_stats_every: int = 0
    checkpoint_every: int = 1
    checkpoint_minutes: float = 10.0
    max_minutes: float | None = None
    keep_checkpoint: bool = False

    @classmethod
    def from_config(cls, trainer: Mapping[str, Any]) -> TrainerSettings:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(trainer) - set(known))
        if unknown:
            raise ConfigError(
                f"trainer has no setting {', '.join(unknown)}; its settings are {', '.join(known)}"
            )
        values = {**{f.name: f.default for f in fields(cls)}, **dict(trainer)}

        def name(key: str) -> str:
            return f"trainer.{key}"

        decay = values["stepsize_decay"]
        if decay not in STEPSIZE_DECAYS:
            raise ConfigError(
                f"trainer.stepsize_decay must be one of {', '.join(STEPSIZE_DECAYS)}, got {decay!r}"
            )
        factor = _number(name("divergence_factor"), values["divergence_factor"], 1.0, strict=True)
        budget = values["max_minutes"]
        return cls(
            epochs=_integer(name("epochs"), values["epochs"], 1),
            batch_size=_integer(name("batch_size"), values["batch_size"], 1),
            stepsize_decay=decay,
            divergence_factor=factor,
            eval_batch_size=_integer(name("eval_batch_size"), values["eval_batch_size"], 1),
            progress=_flag(name("progress"), values["progress"]),
            eval_every=_integer(name("eval_every"), values["eval_every"], 1),
            step_log_epochs=_integer(name("step_log_epochs"), values["step_log_epochs"], 0),
            step_log_parameters=_flag(name("step_log_parameters"), values["step_log_parameters"]),
            evaluate_averaged=_flag(name("evaluate_averaged"), values["evaluate_averaged"]),
            evaluate_initial=_flag(name("evaluate_initial"), values["evaluate_initial"]),
            train_eval_subset=_integer(name("train_eval_subset"), values["train_eval_subset"], 0),
            minibatch_order=_choice(
                name("minibatch_order"), values["minibatch_order"], MINIBATCH_ORDERS
            ),
            moment_stats_every=_integer(
                name("moment_stats_every"), values["moment_stats_every"], 0
            ),
            checkpoint_every=_integer(name("checkpoint_every"), values["checkpoint_every"], 0),
            checkpoint_minutes=_number(
                name("checkpoint_minutes"), values["checkpoint_minutes"], 0.0
            ),
            max_minutes=None if budget is None else _number(name("max_minutes"), budget, 0.0),
            keep_checkpoint=_flag(name("keep_checkpoint"), values["keep_checkpoint"]),
        )


@dataclass(frozen=True)
class Halving:
    """`sweep.halving`: after `after_epochs` epochs keep the `keep` best settings of the grid
    (by their training cost at that epoch, the mean over seeds; a setting with a diverged seed
    ranks last) and train only those on. Pruned settings' curves end there."""

    after_epochs: int
    keep: int

    @classmethod
    def from_config(cls, sweep: Mapping[str, Any] | None) -> Halving | None:
        value = (sweep or {}).get("halving")
        if value is None:
            return None
        if not isinstance(value, Mapping) or set(value) != {"after_epochs", "keep"}:
            raise ConfigError(
                f"sweep.halving must be null or {{after_epochs: E, keep: k}}, got {value!r}"
            )
        return cls(
            after_epochs=_integer("sweep.halving.after_epochs", value["after_epochs"], 1),
            keep=_integer("sweep.halving.keep", value["keep"], 1),
        )


@dataclass(frozen=True)
class RunSettings:
    """The root keys: seed, device, dtype, precision, matmul precision, resume."""

    seed: int
    device: torch.device
    dtype: torch.dtype
    resume: bool
    trainer: TrainerSettings
    matmul_precision: str = "highest"
    precision: str = "32-true"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The block in which the model computes: bfloat16 matmuls and convolutions under
        bf16-mixed (on the CPU and on CUDA), nothing changed under 32-true."""
        if self.precision == "bf16-mixed":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def apply_numerics(self) -> None:
        """Float32 matmuls (and cuDNN convolutions) at the chosen precision: "highest" keeps
        full float32, the paper's numbers; "high" or "medium" let a GPU use TF32."""
        torch.set_float32_matmul_precision(self.matmul_precision)
        torch.backends.cudnn.allow_tf32 = self.matmul_precision != "highest"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RunSettings:
        seed = seed_setting("seed", config.get("seed", 0))
        dtype_name = str(config.get("dtype", "float32"))
        allow_half = _flag("allow_half_precision", config.get("allow_half_precision", False))
        if dtype_name in HALF_DTYPES and not allow_half:
            raise ConfigError(
                f"dtype={dtype_name} is refused: in half precision the paper's runs diverge or "
                "stall; add allow_half_precision=true to run it anyway"
            )
        dtypes = {**DTYPES, **HALF_DTYPES}
        if dtype_name not in dtypes:
            raise ConfigError(f"dtype must be one of {', '.join(dtypes)}, got {dtype_name!r}")
        precision = config.get("matmul_precision", "highest")
        if precision not in MATMUL_PRECISIONS:
            raise ConfigError(
                f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, got {precision!r}"
            )
        mixed = _choice("precision", config.get("precision", "32-true"), PRECISIONS)
        if mixed == "bf16-mixed" and dtype_name != "float32":
            raise ConfigError(
                f"precision=bf16-mixed keeps float32 parameters and costs: it needs "
                f"dtype=float32, got dtype={dtype_name}"
            )
        return cls(
            seed=seed,
            device=resolve_device(str(config.get("device", "auto"))),
            dtype=dtypes[dtype_name],
            resume=_flag("resume", config.get("resume", True)),
            trainer=TrainerSettings.from_config(config.get("trainer") or {}),
            matmul_precision=precision,
            precision=mixed,
        )


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when there is one), `cpu`, `cuda` or `cuda:N`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name} asked for, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name}: there are only {torch.cuda.device_count()} CUDA devices"
            )
    return device
