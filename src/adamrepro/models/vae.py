"""The variational auto-encoder of section 6.4 (Kingma & Welling 2013), as a population."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MemberLinear, normal_init_, per_member


class VariationalAutoencoder(nn.Module):
    """Gaussian encoder q(z|x) = N(mu(x), diag sigma^2(x)) and Bernoulli decoder p(x|z), each
    with one hidden layer of softplus units, prior p(z) = N(0, I). The cost is the negative
    evidence lower bound in nats per example, with one sample z = mu + sigma * eps:

        -ELBO(x) = -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)]          (reconstruction)
                   + 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)   (KL(q || p), exact)

    where p = sigmoid(decoder(z)). Pixels x_i in [0, 1] (grey levels, or binarised by the data
    config) are the Bernoulli targets. `cost`, `evaluate` and `members` follow `Classifier`, so
    the one training loop runs it; labels are ignored.

    Initialisation: torch's nn.Linear default (`init_normal=None`), or every weight and bias
    drawn from N(0, init_normal^2), as Kingma & Welling (2013, section 5) initialise theirs
    ("N(0, 0.01)", which does not say whether 0.01 is the variance or the deviation).
    """

    def __init__(
        self,
        in_features: int,
        seeds: Sequence[int],
        hidden: int = 500,
        latent: int = 50,
        init_normal: float | None = None,
    ):
        super().__init__()
        self.encoder_hidden = MemberLinear(in_features, hidden, seeds, salt=0)
        self.encoder_mean = MemberLinear(hidden, latent, seeds, salt=1)
        self.encoder_log_var = MemberLinear(hidden, latent, seeds, salt=2)
        self.decoder_hidden = MemberLinear(latent, hidden, seeds, salt=3)
        self.decoder_logits = MemberLinear(hidden, in_features, seeds, salt=4)
        if init_normal is not None:
            normal_init_(list(self.children()), init_normal)

    @property
    def members(self) -> int:
        return self.encoder_hidden.members

    def negative_elbo(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """-ELBO per member and example, shape (G, B); `noise` (G, B, latent) is eps, drawn
        from N(0, I) when not given."""
        h = F.softplus(self.encoder_hidden(x))
        mean, log_var = self.encoder_mean(h), self.encoder_log_var(h)
        if noise is None:
            noise = torch.randn_like(mean)
        z = mean + torch.exp(0.5 * log_var) * noise
        logits = self.decoder_logits(F.softplus(self.decoder_hidden(z)))
        target = per_member(x, self.members, example_dims=1)
        reconstruction = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var)
        return reconstruction.sum(-1) + kl.sum(-1)

    def cost(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Mean -ELBO over the minibatch, per member (G,)."""
        return self.negative_elbo(x).mean(1)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor | None, batch_size: int) -> dict[str, Tensor]:
        """Mean -ELBO over a whole set (one sample of z per example); no accuracy."""
        total = torch.zeros(self.members, device=x.device)
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            total += self.negative_elbo(xb).sum(1)
        loss = total / len(x)
        return {"cost": loss, "loss": loss, "accuracy": torch.full_like(loss, float("nan"))}
