"""The project's configs, composed as the command line composes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from .errors import ConfigError, hydra_line

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The project's config with command-line `overrides`, composed as `python -m
    adamrepro.train` would compose it (for drivers that train several runs in one process);
    an override Hydra cannot parse or apply is a one-line ConfigError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose("train", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(hydra_line(error)) from None
