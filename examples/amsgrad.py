"""AMSGrad (Reddi, Kale & Kumar 2018, "On the convergence of Adam and beyond"), written in this
project's optimizer API: an init/update pair on one parameter, so that a whole stepsize grid
trains as one population (a setting may be one value per member). Its update beside Adam's:

    m_t = beta1 m_{t-1} + (1 - beta1) g_t
    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
    vmax_t = max(vmax_{t-1}, v_t)
    theta_t = theta_{t-1} - alpha_t m_hat_t / (sqrt(vmax_hat_t) + eps)

with the bias corrections m_hat = m / (1 - beta1^t), vmax_hat = vmax / (1 - beta2^t), as torch's
amsgrad=True and this project's Adam(amsgrad=true) apply them (Reddi et al. leave them out).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from adamrepro.optim.base import PaperOptimizer, member_view


class AMSGrad(PaperOptimizer):
    defaults_: ClassVar[dict[str, Any]] = dict(stepsize=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
    ranges: ClassVar = dict(
        stepsize=(0.0, None), beta1=(0.0, 1.0), beta2=(0.0, 1.0), eps=(0.0, None)
    )

    def init_state(self, param, group):
        zeros = torch.zeros_like
        return {"m": zeros(param), "v": zeros(param), "vmax": zeros(param)}

    def update(self, param, grad, state, t, work, *, stepsize, beta1, beta2, eps):
        b1, b2 = member_view(beta1, param), member_view(beta2, param)
        m, v, vmax = state["m"], state["v"], state["vmax"]
        m.mul_(b1).add_((1 - b1) * grad)
        v.mul_(b2).add_((1 - b2) * grad * grad)
        torch.maximum(vmax, v, out=vmax)
        m_hat = m / (1 - b1**t)
        vmax_hat = vmax / (1 - b2**t)
        denominator = vmax_hat.sqrt().add_(member_view(eps, param))
        param.sub_(member_view(stepsize, param) * m_hat / denominator)
