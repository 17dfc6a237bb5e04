"""Classifiers of the paper as populations: every method returns one value per member."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MemberLinear


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

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(cross-entropy per member, accuracy per member), means over the minibatch."""
        logits = self(x)  # x: (B, ...) shared by the members, or (G, B, ...) one batch each
        g, b, c = logits.shape
        y = y.expand(g, b)
        ce = F.cross_entropy(logits.reshape(g * b, c), y.reshape(-1), reduction="none")
        accuracy = (logits.argmax(-1) == y).float().mean(1)
        return ce.view(g, b).mean(1), accuracy

    def cost(self, x: Tensor, y: Tensor) -> Tensor:
        """The training objective per member: mean cross-entropy + penalty, shape (G,)."""
        return self.losses(x, y)[0] + self.penalty()

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor, batch_size: int) -> dict[str, Tensor]:
        """Cost, cross-entropy and accuracy over a whole set, in evaluation mode."""
        was_training = self.training
        self.eval()
        ce_sum = torch.zeros(self.members, device=x.device)
        hits = torch.zeros(self.members, device=x.device)
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
