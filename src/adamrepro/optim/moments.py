"""What Adam's second-moment estimate looks like during a run: claim P9 (section 6.3), that in
the CNN "v-hat vanishes towards zero after a few epochs and is dominated by eps"."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

QUANTILES = (0.5, 0.9)


def _per_member(value: Any, members: int) -> list[float]:
    if isinstance(value, Tensor) and value.dim():
        return [float(v) for v in value.tolist()]
    return [float(value)] * members


@torch.no_grad()
def second_moments(
    optimizer: torch.optim.Optimizer,
    names: dict[Tensor, str],
    members: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    """For every parameter tensor whose state has a second-moment estimate v (Adam; RMSProp)
    and every member (the leading axis; `members`, row -> member, limits which and names
    them): the median and 90th percentile of sqrt(vhat), vhat = v / (1 - beta2^t) where bias
    correction is on, else v; eps; and the fraction of entries where sqrt(vhat) < eps (where
    eps dominates the step)."""
    rows = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p) or {}
            if "v" not in state:
                continue
            v, t = state["v"], state["step"]
            count = v.shape[0]
            beta2, eps = _per_member(group["beta2"], count), _per_member(group["eps"], count)
            corrected = bool(group.get("bias_correction", False))
            quantiles = torch.tensor(QUANTILES, dtype=torch.float32, device=v.device)
            which = members if members is not None else {k: k for k in range(count)}
            for k, member in which.items():
                correction = 1.0 - beta2[k] ** t if corrected else 1.0
                root = (v[k].flatten().float() / correction).sqrt()
                median, p90 = torch.quantile(root, quantiles).tolist()
                rows.append(
                    {
                        "parameter": names.get(p, "?"),
                        "member": member,
                        "median": median,
                        "p90": p90,
                        "eps": eps[k],
                        "below_eps": float((root < eps[k]).float().mean()),
                    }
                )
    return rows
