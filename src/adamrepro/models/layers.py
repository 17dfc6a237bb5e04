"""Layers whose parameters carry a leading member axis: a population of G networks that see the
same minibatch and compute G outputs in one batched operation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
    """

    def __init__(self, in_features: int, out_features: int, seeds: Sequence[int], salt: int = 0):
        super().__init__()
        gens = member_generators(seeds, salt)
        self.weight = member_uniform((in_features, out_features), in_features, gens)
        self.bias = member_uniform((out_features,), in_features, gens)

    @property
    def members(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # the same minibatch for every member: one (B, in) x (in, G*out) product
            return torch.einsum("bi,gio->gbo", x, self.weight) + self.bias.unsqueeze(1)
        g, i, o = self.weight.shape
        s, b = x.shape[0], x.shape[1]  # one (B, in) x (in, G/S*out) product per row of x
        out = torch.einsum("sbi,ksio->ksbo", x, self.weight.view(g // s, s, i, o))
        return out.reshape(g, b, o) + self.bias.unsqueeze(1)

    def extra_repr(self) -> str:
        g, i, o = self.weight.shape
        return f"members={g}, in_features={i}, out_features={o}"


class MemberConv2d(nn.Module):
    """A 2-d convolution for each of G members as one grouped convolution: the input is
    (B, G * in_channels, H, W), member k's channels in block k, and so is the output.

    Weight (G, out, in, k, k), initialised as torch's nn.Conv2d (uniform in +-1/sqrt(fan_in)),
    member k from `seeds[k]`; stride 1, zero padding `padding`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 seeds: Sequence[int], salt: int = 0, padding: int = 0):  # fmt: skip
        super().__init__()
        fan_in = in_channels * kernel_size**2
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        gens = member_generators(seeds, salt)
        self.weight = member_uniform(shape, fan_in, gens)
        self.bias = member_uniform((out_channels,), fan_in, gens)
        self.padding = padding

    @property
    def members(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        g = self.members
        return F.conv2d(x, self.weight.flatten(0, 1), self.bias.flatten(), padding=self.padding,
                        groups=g)  # fmt: skip

    def extra_repr(self) -> str:
        g, o, i, k, _ = self.weight.shape
        return f"members={g}, in_channels={i}, out_channels={o}, kernel_size={k}"


def per_member(x: Tensor, members: int, example_dims: int) -> Tensor:
    """The input each member reads, as one (G, B, ...) tensor. `x` is (B, ...) shared by all
    members, or (S, B, ...) with member g reading x[g % S]; one example has `example_dims`
    dimensions. Shared inputs are expanded (a view), not copied."""
    if x.dim() == example_dims + 1:
        return x.expand(members, *x.shape)
    return x.repeat(members // x.shape[0], *([1] * (x.dim() - 1)))
