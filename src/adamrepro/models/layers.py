"""Layers whose parameters carry a leading member axis: a population of G networks that see the
same minibatch and compute G outputs in one batched operation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


def member_generators(seeds: Sequence[int], salt: int) -> list[torch.Generator]:
    """One generator per member, seeded by (seed, salt) so each layer draws its own numbers."""
    return [torch.Generator().manual_seed(int(seed) * 1_000_003 + salt) for seed in seeds]


def member_uniform(
    shape: Sequence[int], fan_in: int, gens: Sequence[torch.Generator]
) -> nn.Parameter:
    """A parameter of shape (G, *shape), member k uniform in +-1/sqrt(fan_in) from `gens[k]`
    (torch's default initialisation of nn.Linear and nn.Conv2d, weights and biases alike)."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(
        torch.stack([torch.empty(*shape).uniform_(-bound, bound, generator=g) for g in gens])
    )


class MemberLinear(nn.Module):
    """y_k = x_k W_k + b_k for each member k, with W of shape (G, in, out).

    Initialised as torch's nn.Linear (uniform in +-1/sqrt(in)), member k from `seeds[k]`:
    members with the same seed start from the same point, as the paper's protocol asks.
    The input is (B, in), shared by all members, or (S, B, in) with S dividing G, member g
    reading x[g % S] (the members of one seed share their minibatch); the output is
    (G, B, out).

    Two ways to compute it, whichever is faster (measured on the CPU, `scripts/bench_steps.py`):
    with few outputs (< FOLD_BELOW, logistic regression) the members that share an input are
    folded into one (B, in) x (in, G * out) product; otherwise one batched product per member,
    the bias added inside it (`baddbmm`), a shared input broadcast without a copy, and no copy
    of the weights either way.
    """

    FOLD_BELOW = 32

    def __init__(self, in_features: int, out_features: int, seeds: Sequence[int], salt: int = 0):
        super().__init__()
        gens = member_generators(seeds, salt)
        self.weight = member_uniform((in_features, out_features), in_features, gens)
        self.bias = member_uniform((out_features,), in_features, gens)
        self.seeds, self.salt = [int(seed) for seed in seeds], salt

    @property
    def members(self) -> int:
        return self.weight.shape[0]

    @property
    def fan_in(self) -> int:
        return self.weight.shape[1]

    @torch.no_grad()
    def normal_(self, std: float, bias_std: float = 0.0) -> None:
        """Redraw: weights N(0, std^2 / in), biases N(0, bias_std^2) (0: zero), member k from
        its own generator (the same seeds give the same numbers)."""
        g, i, o = self.weight.shape
        for k, gen in enumerate(member_generators(self.seeds, self.salt)):
            self.weight[k] = torch.randn(i, o, generator=gen) * (std / math.sqrt(i))
            self.bias[k] = torch.randn(o, generator=gen) * bias_std

    def forward(self, x: Tensor) -> Tensor:
        g, i, o = self.weight.shape
        bias = self.bias.unsqueeze(1)
        if o < self.FOLD_BELOW and x.dim() == 2:  # one (B, in) x (in, G*out) product
            return torch.einsum("bi,gio->gbo", x, self.weight) + bias
        if o < self.FOLD_BELOW and x.shape[0] != g:  # one such product per row of x
            s, b = x.shape[0], x.shape[1]
            out = torch.einsum("sbi,ksio->ksbo", x, self.weight.view(g // s, s, i, o))
            return out.reshape(g, b, o) + bias
        return torch.baddbmm(bias, per_member(x, g, example_dims=1), self.weight)

    def extra_repr(self) -> str:
        g, i, o = self.weight.shape
        return f"members={g}, in_features={i}, out_features={o}"


class MemberConv2d(nn.Module):
    """A 2-d convolution for each of G members as one grouped convolution: the input is
    (B, G * in_channels, H, W), member k's channels in block k, and so is the output.

    Weight (G, out, in, k, k), initialised as torch's nn.Conv2d (uniform in +-1/sqrt(fan_in)),
    member k from `seeds[k]`; stride 1, zero padding `padding`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        seeds: Sequence[int],
        salt: int = 0,
        padding: int = 0,
    ):
        super().__init__()
        fan_in = in_channels * kernel_size**2
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        gens = member_generators(seeds, salt)
        self.weight = member_uniform(shape, fan_in, gens)
        self.bias = member_uniform((out_channels,), fan_in, gens)
        self.padding = padding
        self.seeds, self.salt = [int(seed) for seed in seeds], salt

    @property
    def members(self) -> int:
        return self.weight.shape[0]

    @property
    def fan_in(self) -> int:
        return self.weight[0, 0].numel()  # in_channels x k x k

    @torch.no_grad()
    def normal_(self, std: float, bias_std: float = 0.0) -> None:
        """Redraw as `MemberLinear.normal_`: weights N(0, std^2 / fan_in), biases N(0,
        bias_std^2), member k from its own generator."""
        _, o, i, k, _ = self.weight.shape
        for m, gen in enumerate(member_generators(self.seeds, self.salt)):
            self.weight[m] = torch.randn(o, i, k, k, generator=gen) * (std / math.sqrt(self.fan_in))
            self.bias[m] = torch.randn(o, generator=gen) * bias_std

    def forward(self, x: Tensor) -> Tensor:
        g = self.members
        return F.conv2d(
            x, self.weight.flatten(0, 1), self.bias.flatten(), padding=self.padding, groups=g
        )

    def extra_repr(self) -> str:
        g, o, i, k, _ = self.weight.shape
        return f"members={g}, in_channels={i}, out_channels={o}, kernel_size={k}"


class Dropout(nn.Module):
    """Dropout (Hinton et al. 2012): in training x * m / (1 - p) with m = [u >= p], u uniform
    in [0, 1) drawn for every element (so every member its own mask); in evaluation x.

    The same distribution as `torch.nn.Dropout`, drawn differently: comparing uniform numbers
    with p is about 4x faster on the CPU than torch's `bernoulli_`, so the random stream (not
    its law) differs from nn.Dropout's. Under bfloat16 autocast the uniforms are still drawn
    in float32 (faster here than in bfloat16, and the same stream), the mask then cast."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"a dropout rate must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        draws = x.dtype if x.dtype.itemsize >= 4 else torch.float32
        mask = torch.rand_like(x, dtype=draws).ge_(self.p).div_(1.0 - self.p)  # 0 or 1 / (1 - p)
        return x * mask.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def normal_init_(layers: Sequence[MemberLinear | MemberConv2d], std: float) -> None:
    """Every weight and bias of `layers` redrawn from N(0, std^2) (the weights' std does not
    shrink with the fan-in): the initialisation of Kingma & Welling, `model.init_normal`."""
    for layer in layers:
        layer.normal_(std * math.sqrt(layer.fan_in), bias_std=std)


def per_member(x: Tensor, members: int, example_dims: int) -> Tensor:
    """The input each member reads, as one (G, B, ...) tensor. `x` is (B, ...) shared by all
    members, or (S, B, ...) with member g reading x[g % S]; one example has `example_dims`
    dimensions. Shared inputs are expanded (a view), not copied."""
    if x.dim() == example_dims + 1:
        return x.expand(members, *x.shape)
    if x.shape[0] == members:
        return x
    return x.repeat(members // x.shape[0], *([1] * (x.dim() - 1)))
