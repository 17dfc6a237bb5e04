"""The optimizers compared in the paper, each as the paper (or the paper it cites) writes it.

Notation follows the paper: g_t the gradient at step t (t = 1, 2, ...), alpha the stepsize,
every operation on vectors element-wise. Where torch.optim's formula differs from the paper's,
the paper's is the default and torch's is a named flag.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import (
    Hyper,
    PaperOptimizer,
    TemporalAveraging,
    Work,
    ema_,
    has_momentum,
    member_view,
    momentum_step,
    squared,
    sub_ratio_,
)

_UNIT = (0.0, 1.0)  # [0, 1)
_NONNEG = (0.0, None)


class SGD(PaperOptimizer):
    """Stochastic gradient descent, with heavy-ball or Nesterov momentum.

        momentum = 0:  theta_t = theta_{t-1} - alpha g_t
        momentum > 0:  v_t = mu v_{t-1} - alpha g_t;  theta_t = theta_{t-1} + v_t
        nesterov:      v_t = mu v_{t-1} - alpha g_t;  theta_t = theta_{t-1} + mu v_t - alpha g_t

    Nesterov is Sutskever et al. (2013) in the look-ahead variables (see `momentum_step`);
    `torch_momentum_form` switches to torch.optim.SGD's buffer form.
    """

    defaults_: ClassVar[dict[str, Any]] = dict(
        stepsize=0.01, momentum=0.0, nesterov=False, torch_momentum_form=False
    )
    ranges: ClassVar = dict(stepsize=_NONNEG, momentum=_UNIT)

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"velocity": torch.zeros_like(param)} if has_momentum(group) else {}

    def update(
        self,
        param,
        grad,
        state,
        t,
        work: Work,
        *,
        stepsize,
        momentum,
        nesterov,
        torch_momentum_form,
    ):
        momentum_step(
            param, grad, state, stepsize, momentum, nesterov, torch_momentum_form, work, first=0
        )


class AdaGrad(PaperOptimizer):
    """AdaGrad (Duchi et al. 2011), diagonal version, as in the paper's section 5:

        s_t = s_0 + sum_{i<=t} g_i^2;   theta_t = theta_{t-1} - alpha g_t / (sqrt(s_t) + eps)

    with s_0 = `initial_accumulator` (0 in Duchi et al. and in torch; TensorFlow uses 0.1).
    """

    defaults_: ClassVar[dict[str, Any]] = dict(stepsize=0.01, eps=1e-10, initial_accumulator=0.0)
    ranges: ClassVar = dict(stepsize=_NONNEG, eps=_NONNEG, initial_accumulator=_NONNEG)

    def init_state(self, param, group):
        s_0 = member_view(group["initial_accumulator"], param)  # a number, or one per member
        return {"sum_sq": torch.zeros_like(param).add_(s_0)}

    def update(self, param, grad, state, t, work: Work, *, stepsize, eps, initial_accumulator):
        s = state["sum_sq"].addcmul_(grad, grad)  # s_t = s_{t-1} + g_t^2
        sub_ratio_(param, grad, torch.sqrt(s, out=work[0]).add_(eps), stepsize)


class RMSProp(PaperOptimizer):
    """RMSProp (Tieleman & Hinton 2012), optionally with momentum on the rescaled gradient
    (the paper's section 5):

        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2;   d_t = g_t / (sqrt(v_t) + eps)
        theta_t = theta_{t-1} - alpha d_t           (momentum = 0, else as `SGD` on d_t)

    `beta2` is torch's `alpha`. `eps_inside_sqrt` uses sqrt(v_t + eps) (TensorFlow's form).
    """

    defaults_: ClassVar[dict[str, Any]] = dict(
        stepsize=0.001,
        beta2=0.9,
        eps=1e-8,
        momentum=0.0,
        nesterov=False,
        eps_inside_sqrt=False,
        torch_momentum_form=False,
    )
    ranges: ClassVar = dict(stepsize=_NONNEG, beta2=_UNIT, eps=_NONNEG, momentum=_UNIT)

    def init_state(self, param, group):
        state = {"v": torch.zeros_like(param)}
        if has_momentum(group):
            state["velocity"] = torch.zeros_like(param)
        return state

    def update(
        self,
        param,
        grad,
        state,
        t,
        work: Work,
        *,
        stepsize,
        beta2,
        eps,
        momentum,
        nesterov,
        eps_inside_sqrt,
        torch_momentum_form,
    ):
        v = ema_(state["v"], squared(grad, work[0]), beta2)
        if eps_inside_sqrt:
            denominator = torch.add(v, eps, out=work[0]).sqrt_()
        else:
            denominator = torch.sqrt(v, out=work[0]).add_(eps)
        d = torch.div(grad, denominator, out=work[0])  # d_t = g_t / (sqrt(v_t) + eps)
        momentum_step(
            param, d, state, stepsize, momentum, nesterov, torch_momentum_form, work, first=1
        )


class AdaDelta(PaperOptimizer):
    """AdaDelta (Zeiler 2012, Algorithm 1), with a stepsize multiplier as in torch:

    E[g^2]_t  = rho E[g^2]_{t-1} + (1 - rho) g_t^2
    dx_t      = - sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) g_t
    E[dx^2]_t = rho E[dx^2]_{t-1} + (1 - rho) dx_t^2
    theta_t   = theta_{t-1} + alpha dx_t          (alpha = 1 in Zeiler's paper)
    """

    defaults_: ClassVar[dict[str, Any]] = dict(stepsize=1.0, rho=0.95, eps=1e-6)
    ranges: ClassVar = dict(stepsize=_NONNEG, rho=_UNIT, eps=_NONNEG)

    def init_state(self, param, group):
        return {"sq_grad": torch.zeros_like(param), "sq_delta": torch.zeros_like(param)}

    def update(self, param, grad, state, t, work: Work, *, stepsize, rho, eps):
        sq_grad = ema_(state["sq_grad"], squared(grad, work[0]), rho)
        rms_grad = torch.add(sq_grad, eps, out=work[1]).sqrt_()
        delta = torch.add(state["sq_delta"], eps, out=work[0]).sqrt_().div_(rms_grad).mul_(grad)
        ema_(state["sq_delta"], squared(delta, work[1]), rho)
        param.sub_(torch.mul(delta, stepsize, out=work[1]))


class Adam(TemporalAveraging, PaperOptimizer):
    """Adam, the paper's Algorithm 1:

        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        mhat_t = m_t / (1 - beta1^t);   vhat_t = v_t / (1 - beta2^t)
        theta_t = theta_{t-1} - alpha mhat_t / (sqrt(vhat_t) + eps)

    `bias_correction=False` drops the two divisions: RMSProp with momentum, as in section 6.4.
    `averaging=True` keeps the temporal average of section 7.2 (see `TemporalAveraging`).

    Not in the paper's Algorithm 1, each behind its switch (off by default):
    - `amsgrad=True` (Reddi, Kale & Kumar 2018, "On the Convergence of Adam and Beyond"): the
      step divides by the largest v so far, vmax_t = max(vmax_{t-1}, v_t), in place of v_t
      (with `bias_correction`, by sqrt(vmax_t / (1 - beta2^t)), as torch.optim.Adam does;
      without it, their Algorithm 2).
    - `beta1_decay=lambda` < 1: beta1_t = beta1 lambda^(t-1) in m_t's average, the schedule of
      the paper's Theorem 4.1 (section 4); the bias correction keeps 1 - beta1^t, as there.
    """

    defaults_: ClassVar[dict[str, Any]] = dict(
        stepsize=0.001,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        bias_correction=True,
        averaging=False,
        averaging_beta=None,
        amsgrad=False,
        beta1_decay=1.0,
    )
    ranges: ClassVar = dict(
        stepsize=_NONNEG,
        beta1=_UNIT,
        beta2=_UNIT,
        eps=_NONNEG,
        averaging_beta=_UNIT,
        beta1_decay=(0.0, 1.0 + 1e-12),
    )

    def init_state(self, param, group):
        state = {"m": torch.zeros_like(param), "v": torch.zeros_like(param)}
        if group["averaging"]:
            state["average"] = torch.zeros_like(param)
        if group["amsgrad"]:
            state["v_max"] = torch.zeros_like(param)
        return state

    def update(
        self,
        param,
        grad,
        state,
        t,
        work: Work,
        *,
        stepsize,
        beta1,
        beta2,
        eps,
        bias_correction,
        averaging,
        averaging_beta,
        amsgrad,
        beta1_decay,
    ):
        beta1_t = (
            beta1
            if isinstance(beta1_decay, float) and beta1_decay == 1.0
            else (beta1 * beta1_decay ** (t - 1))
        )
        m = ema_(state["m"], grad, beta1_t)
        v = ema_(state["v"], squared(grad, work[0]), beta2)
        if amsgrad:
            v = torch.maximum(state["v_max"], v, out=state["v_max"])
        root = torch.sqrt(v, out=work[0])
        if bias_correction:  # alpha mhat / (sqrt(vhat) + eps), the corrections on the numbers
            denominator = root.div_(_sqrt(1 - beta2**t)).add_(eps)
            sub_ratio_(param, m, denominator, stepsize / (1 - beta1**t))
        else:
            sub_ratio_(param, m, root.add_(eps), stepsize)
        if averaging:
            self._average(param, state, beta2, averaging_beta)


class AdaMax(TemporalAveraging, PaperOptimizer):
    """AdaMax, the paper's Algorithm 2 (section 7.1):

        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        u_t = max(beta2 u_{t-1}, |g_t| + eps)
        theta_t = theta_{t-1} - (alpha / (1 - beta1^t)) m_t / u_t

    The paper has no eps (eps = 0, the default; where u_t = 0, m_t = 0 too and the step is 0);
    torch.optim.Adamax adds eps = 1e-8 inside the max.
    """

    defaults_: ClassVar[dict[str, Any]] = dict(
        stepsize=0.002, beta1=0.9, beta2=0.999, eps=0.0, averaging=False, averaging_beta=None
    )
    ranges: ClassVar = dict(
        stepsize=_NONNEG, beta1=_UNIT, beta2=_UNIT, eps=_NONNEG, averaging_beta=_UNIT
    )

    def init_state(self, param, group):
        state = {"m": torch.zeros_like(param), "u": torch.zeros_like(param)}
        if group["averaging"]:
            state["average"] = torch.zeros_like(param)
        return state

    def update(
        self,
        param,
        grad,
        state,
        t,
        work: Work,
        *,
        stepsize,
        beta1,
        beta2,
        eps,
        averaging,
        averaging_beta,
    ):
        m = ema_(state["m"], grad, beta1)
        magnitude = torch.abs(grad, out=work[0]).add_(eps)  # |g_t| + eps
        u = torch.maximum(state["u"].mul_(beta2), magnitude, out=state["u"])
        ratio = torch.div(m, u, out=work[0]).masked_fill_(~(u > 0), 0.0)  # m = 0 where u = 0
        param.sub_(ratio.mul_(stepsize / (1 - beta1**t)))
        if averaging:
            self._average(param, state, beta2, averaging_beta)


def _sqrt(x: Hyper) -> Hyper:
    return x.sqrt() if isinstance(x, Tensor) else x**0.5


OPTIMIZERS: dict[str, type[PaperOptimizer]] = {
    "sgd": SGD,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adadelta": AdaDelta,
    "adam": Adam,
    "adamax": AdaMax,
}
