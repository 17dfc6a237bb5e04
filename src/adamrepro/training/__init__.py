"""Training: the population and its settings (`population`), what the loop watches and measures
(`evaluation`), the loop (`loop`), a run in its output folder, started or continued (`run`),
and the configs composed as the command line composes them (`config`). The command line
itself is `adamrepro.train`."""

from ..config import CONFIG_DIR, compose_config
from .population import population, stack_settings
from .run import train

__all__ = ["CONFIG_DIR", "compose_config", "population", "stack_settings", "train"]
