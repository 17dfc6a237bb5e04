"""The data of a 2-D surface problem (`models/surfaces.py`): one row of gradient noise per step.

The surface needs no data; a row per step keeps the training loop's protocol (an epoch of
`steps` minibatches of one row each). The rows are Gaussian with standard deviation `noise`,
drawn from `seed` (zero rows: plain descent on the surface); the test set is one zero row.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import TensorData


def load_surface(steps: int = 1000, noise: float = 0.0, seed: int = 0) -> TensorData:
    if int(steps) < 1 or not float(noise) >= 0:
        raise ConfigError(f"data.steps must be >= 1 and data.noise >= 0, got {steps}, {noise}")
    generator = torch.Generator().manual_seed(int(seed))
    rows = torch.randn(int(steps), 2, generator=generator) * float(noise)
    label = f"2-D surface, gradient noise sd {float(noise):g}" if noise else "2-D surface, no noise"
    return TensorData(
        rows,
        torch.zeros(int(steps), dtype=torch.long),
        torch.zeros(1, 2),
        torch.zeros(1, dtype=torch.long),
        0,
        {"name": "surface", "lossless": True, "label": label},
    )
