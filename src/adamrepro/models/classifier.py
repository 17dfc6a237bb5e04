"""Classifiers of the paper as populations: every method returns one value per member."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.sparse import SparseBatch
from ..errors import ConfigError
from .layers import Dropout, MemberConv2d, MemberLinear, normal_init_, per_member


class Classifier(nn.Module):
    """Cross-entropy cost plus an L2 penalty (weight_decay / 2) ||W||^2 on the weights, per
    member. Subclasses define `forward(x) -> logits (G, B, classes)` and `members`."""

    weight_decay: float = 0.0
    members: int

    def penalty(self) -> Tensor:
        """(weight_decay / 2) sum of squared weights (biases excluded), shape (G,)."""
        total = torch.zeros(self.members, device=next(self.parameters()).device)
        if self.weight_decay:
            for name, p in self.named_parameters():
                if name.endswith("weight"):
                    total = total + p.pow(2).flatten(1).sum(1)
        return 0.5 * self.weight_decay * total

    def losses(self, x: Any, y: Tensor, accuracy: bool = True) -> tuple[Tensor, Tensor | None]:
        """(cost per member, accuracy per member or None), means over the minibatch:
        cross-entropy, or for one output the logistic loss of binary logistic regression
        (the output is the log-odds of label 1)."""
        logits = self(x)  # x: (B, ...) shared, or (S, B, ...): member g reads x[g % S]
        g, b, c = logits.shape
        y = y.repeat(g // y.shape[0], 1) if y.dim() == 2 else y.expand(g, b)
        if c == 1:
            z = logits.squeeze(-1)
            loss = F.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction="none")
            correct = ((z > 0).long() == y) if accuracy else None
        else:
            loss = F.cross_entropy(logits.reshape(g * b, c), y.reshape(-1), reduction="none")
            loss = loss.view(g, b)
            correct = (logits.argmax(-1) == y) if accuracy else None
        mean_correct = correct.to(logits.dtype).mean(1) if correct is not None else None
        return loss.mean(1), mean_correct

    def cost(self, x: Any, y: Tensor) -> Tensor:
        """The training objective per member: mean cost + penalty, shape (G,)."""
        return self.losses(x, y, accuracy=False)[0] + self.penalty()

    @torch.no_grad()
    def evaluate(self, x: Any, y: Tensor, batch_size: int) -> dict[str, Tensor]:
        """Cost, cross-entropy and accuracy over a whole set, in evaluation mode."""
        was_training = self.training
        self.eval()
        ce_sum = torch.zeros(self.members, device=y.device)
        hits = torch.zeros(self.members, device=y.device)
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            ce, acc = self.losses(xb, yb)
            ce_sum += ce * len(xb)
            hits += acc * len(xb)
        self.train(was_training)
        loss = ce_sum / len(x)
        return {"cost": loss + self.penalty(), "loss": loss, "accuracy": hits / len(x)}


class LogisticRegression(Classifier):
    """Multiclass logistic regression on the raw inputs (section 6.1): softmax(x W + b).
    Inputs are flat: (B, in) or (G, B, in)."""

    def __init__(
        self, in_features: int, num_classes: int, seeds: Sequence[int], weight_decay: float = 0.0
    ):
        super().__init__()
        self.linear = MemberLinear(in_features, num_classes, seeds)
        self.weight_decay = weight_decay

    @property
    def members(self) -> int:  # type: ignore[override]
        return self.linear.members

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class BagOfWordsLogisticRegression(Classifier):
    """Logistic regression on sparse bag-of-words rows with dropout noise on the features
    (section 6.1, IMDB): each nonzero feature is zeroed with probability `input_dropout` (and
    the rest scaled by 1/(1 - p)) during training, independently for each member. Two classes
    give one output, the log-odds of the positive class."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        seeds: Sequence[int],
        weight_decay: float = 0.0,
        input_dropout: float = 0.5,
    ):
        super().__init__()
        outputs = 1 if num_classes == 2 else num_classes
        self.linear = MemberLinear(vocab_size, outputs, seeds)
        self.dropout = Dropout(input_dropout)
        self.weight_decay = weight_decay

    @property
    def members(self) -> int:  # type: ignore[override]
        return self.linear.members

    def forward(self, x: SparseBatch) -> Tensor:
        weight, bias = self.linear.weight, self.linear.bias  # (G, V, C), (G, C)
        g, _, c = weight.shape
        s = x.groups or 1  # member g reads the rows of group g % s
        k, b = g // s, len(x)
        group = x.row // b  # the group of each nonzero entry
        value = self.dropout(x.value.expand(k, -1))  # (K, nnz): each member its own mask
        terms = weight.view(k, s, -1, c)[:, group, x.col, :] * value.unsqueeze(-1)
        logits = weight.new_zeros(k, x.rows, c).index_add_(1, x.row, terms)
        return logits.view(k, s, b, c).reshape(g, b, c) + bias.unsqueeze(1)


class MultilayerNetwork(Classifier):
    """The multilayer network of section 6.2: in -> 1000 ReLU -> 1000 ReLU -> classes, with
    dropout on the input (`input_dropout`) and on each hidden layer (`hidden_dropout`) during
    training, each member drawing its own masks; 0 switches dropout off (Figure 2b).
    Initialisation: torch's (uniform in +-1/sqrt(fan_in)) unless `init_std` = c is given:
    then weights N(0, c^2 / fan_in) and biases 0 (c = 2 x 0.5 is the SFO authors' harness, whose
    cost path halves weights drawn with c = 2). `zero_output` then starts the output layer's
    weights and biases at zero (the initial cost is log(classes) for every member)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        seeds: Sequence[int],
        hidden: Sequence[int] = (1000, 1000),
        input_dropout: float = 0.2,
        hidden_dropout: float = 0.5,
        weight_decay: float = 0.0,
        init_std: float | None = None,
        zero_output: bool = False,
    ):
        super().__init__()
        sizes = [in_features, *hidden, num_classes]
        self.layers = nn.ModuleList(
            MemberLinear(n_in, n_out, seeds, salt=i)
            for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes))
        )
        with torch.no_grad():
            if init_std is not None:
                if not (isinstance(init_std, int | float) and 0 < init_std < math.inf):
                    raise ConfigError(f"model.init_std must be a number > 0, got {init_std!r}")
                for layer in self.layers:
                    layer.normal_(init_std)
            if zero_output:  # the output layer starts at zero
                self.layers[-1].weight.zero_()
                self.layers[-1].bias.zero_()
        self.input_dropout = Dropout(input_dropout)
        self.hidden_dropout = Dropout(hidden_dropout)
        self.weight_decay = weight_decay

    @property
    def members(self) -> int:  # type: ignore[override]
        return self.layers[0].members

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.input_dropout.p > 0:  # each member its own mask
            x = self.input_dropout(per_member(x, self.members, example_dims=1))
        for layer in self.layers[:-1]:
            x = self.hidden_dropout(torch.relu(layer(x)))
        return self.layers[-1](x)


class ConvolutionalNetwork(Classifier):
    """The convolutional network of section 6.3 (c64-c64-c128-1000): three stages of 5x5
    convolution (size kept by zero padding), ReLU and 3x3 max pooling with stride 2, then a
    fully connected layer of 1000 ReLU units and the output layer. Pooling pads by 1, so
    32 -> 16 -> 8 -> 4 (cuda-convnet's overlapping pooling covers the edge the same way).

    `dropout` switches dropout on the input (`input_dropout`) and on the fully connected layer
    (`hidden_dropout`) during training, each member its own masks. The members' feature maps
    sit side by side in the channels, (B, G * C, H, W): each stage is one grouped convolution,
    computed in the channels-last layout (measured faster on the CPU in float32 and bfloat16
    alike, mostly in the pooling: results/bench.md).

    Initialisation: torch's (uniform in +-1/sqrt(fan_in)), or with `init_normal` = s every
    weight and bias drawn from N(0, s^2), as the VAE's `init_normal` (the paper gives none).
    """

    memory_format = (
        torch.channels_last
    )  # torch.contiguous_format: NCHW (scripts/bench_precision.py)

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        seeds: Sequence[int],
        channels: Sequence[int] = (64, 64, 128),
        kernel_size: int = 5,
        hidden: int = 1000,
        dropout: bool = False,
        input_dropout: float = 0.2,
        hidden_dropout: float = 0.5,
        weight_decay: float = 0.0,
        init_normal: float | None = None,
    ):
        super().__init__()
        in_channels, height, width = in_shape
        sizes = [in_channels, *channels]
        self.convs = nn.ModuleList(
            MemberConv2d(c_in, c_out, kernel_size, seeds, salt=i, padding=kernel_size // 2)
            for i, (c_in, c_out) in enumerate(itertools.pairwise(sizes))
        )
        for _ in channels:
            height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1  # pool 3, stride 2, pad 1
        self.example_dims = len(in_shape)
        self.fully_connected = MemberLinear(
            channels[-1] * height * width, hidden, seeds, salt=len(channels)
        )
        self.output = MemberLinear(hidden, num_classes, seeds, salt=len(channels) + 1)
        if init_normal is not None:
            if not (isinstance(init_normal, int | float) and 0 < init_normal < math.inf):
                raise ConfigError(f"model.init_normal must be a number > 0, got {init_normal!r}")
            normal_init_([*self.convs, self.fully_connected, self.output], init_normal)
        self.input_dropout = Dropout(input_dropout if dropout else 0.0)
        self.hidden_dropout = Dropout(hidden_dropout if dropout else 0.0)
        self.weight_decay = weight_decay

    @property
    def members(self) -> int:  # type: ignore[override]
        return self.output.members

    def forward(self, x: Tensor) -> Tensor:
        g = self.members
        x = per_member(x, g, self.example_dims)  # (G, B, C, H, W)
        if self.training and self.input_dropout.p > 0:
            x = self.input_dropout(x)
        b = x.shape[1]
        h = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])  # (B, G * C, H, W)
        h = h.contiguous(memory_format=self.memory_format)
        for conv in self.convs:
            h = F.max_pool2d(torch.relu(conv(h)), kernel_size=3, stride=2, padding=1)
        h = h.reshape(b, g, -1).transpose(0, 1)  # (G, B, features (C, H, W)): a copy from NHWC
        h = self.hidden_dropout(torch.relu(self.fully_connected(h)))
        return self.output(h)
