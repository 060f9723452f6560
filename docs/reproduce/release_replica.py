"""A replica of the original release's K = 10 `mlp` VAE training on MNIST, in plain PyTorch.

It copies the release's model and loop (hadivafaii/PoissonVAE at the paper-era commit d30444d:
`ResDenseLayer` and the initialisation of main/vae.py, the Poisson sampler of
base/distributions.py, the loss, Adamax with coupled weight decay, warm-up, gradient clipping and
beta and temperature schedules of main/train_vae.py) so that the first epochs of the release's
algorithm can be compared with the package's. Only the MNIST loader is the package's.

    python docs/reproduce/release_replica.py --expansion 2 --epochs 2
    python docs/reproduce/release_replica.py --expansion 2 --epochs 2 --schedule-epochs 1200
    python docs/reproduce/release_replica.py --family gaussian --expansion 2 --epochs 2

Prints the validation squared error, KL and mean feature (log dr; a Gaussian's mean) after each
epoch (docs/reproduce.md, "What separates our MNIST runs from the paper's").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import distributions, nn

from poisson_vae.config import DataConfig

K, D, BATCH, LR = 10, 784, 200, 2e-3


def softclamp_upper(x: torch.Tensor, c: float) -> torch.Tensor:
    return c - F.softplus(c - x)


def relaxed_poisson(log_rate: torch.Tensor, temperature: float, n_arrivals: int = 263) -> torch.Tensor:
    """The release's sampler: the first n_arrivals exponential arrivals, summed through a sigmoid."""
    rate = torch.exp(softclamp_upper(log_rate, 5.3)) + torch.finfo(torch.float32).eps
    times = torch.cumsum(distributions.Exponential(rate).rsample((n_arrivals,)), 0)
    if temperature > 0:
        return torch.sigmoid((1.0 - times) / temperature).sum(0)
    return (times < 1.0).sum(0).float()


class ResDenseLayer(nn.Module):
    def __init__(self, dim: int, expand: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, dim * expand), nn.Linear(dim * expand, dim)
        self.layer_norm, self.drop = nn.LayerNorm(dim), nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.fc2(self.drop(torch.relu(self.fc1(x)))) + x)


class ReleaseVAE(nn.Module):
    """The release's `mlp+b|mlp+b` VAE; only fc_enc is redrawn (N(0, 0.1^2), zero bias)."""

    def __init__(self, family: str, expansion: int, seed: int) -> None:
        super().__init__()
        self.family = family
        self.enc = ResDenseLayer(D, expansion)
        self.fc_enc = nn.Linear(D, K if family == "poisson" else 2 * K)
        self.fc_dec = nn.Linear(K, D)
        self.dec = nn.Sequential(nn.SiLU(), ResDenseLayer(D, expansion), nn.SiLU(), nn.Linear(D, D))
        nn.init.normal_(self.fc_enc.weight, 0.0, 0.1)
        nn.init.zeros_(self.fc_enc.bias)
        prior = np.random.default_rng(seed).uniform(-6.0, -2.0, (1, K))
        self.log_rate = nn.Parameter(torch.tensor(prior, dtype=torch.float32))

    def forward(self, x: torch.Tensor, temperature: float) -> tuple[torch.Tensor, ...]:
        """(squared error, KL, features), each per sample."""
        h = self.fc_enc(self.enc(x.flatten(1)))
        if self.family == "poisson":
            log_dr = softclamp_upper(h, 10.0)
            z = relaxed_poisson(self.log_rate + log_dr, temperature)
            kl = torch.exp(self.log_rate) * (1 + torch.exp(log_dr) * (log_dr - 1))
            features = log_dr
        else:
            mu, log_sigma = h[:, :K], h[:, K:].div(5.3).tanh().mul(5.3)
            z = mu + torch.exp(log_sigma) * torch.randn_like(mu) * temperature
            kl = 0.5 * (mu**2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1)
            features = mu
        reconstruction = self.dec(self.fc_dec(z)).view_as(x)
        return (reconstruction - x).pow(2).sum((1, 2, 3)), kl.sum(1), features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("poisson", "gaussian"), default="poisson")
    parser.add_argument("--expansion", type=int, default=16, help="the block's (release: 16)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs to run")
    parser.add_argument("--schedule-epochs", type=int, help="schedules' length (default: --epochs)")
    parser.add_argument("--warmup-epochs", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = ReleaseVAE(args.family, args.expansion, args.seed)
    splits = DataConfig(data="mnist").load()
    train, valid = torch.as_tensor(splits["train"]), torch.as_tensor(splits["valid"][:5000])
    per_epoch = len(train) // BATCH
    total = (args.schedule_epochs or args.epochs) * per_epoch
    hold, ramp = round(0.01 * total), int(0.5 * total)
    optimiser = torch.optim.Adamax(model.parameters(), lr=LR, weight_decay=3e-4)
    step = 0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train))
        for i in range(per_epoch):
            warming = epoch < args.warmup_epochs
            if warming:
                for group in optimiser.param_groups:
                    group["lr"] = LR * step / args.warmup_epochs / per_epoch
            beta = 1e-4 if step < hold else min(1.0, 1e-4 + (1 - 1e-4) * (step - hold) / (ramp - hold))
            temperature = 1.0
            if args.family == "poisson":
                temperature = max(0.05, 1.0 - 0.95 * step / ramp)
            sse, kl, _ = model(train[order[i * BATCH : (i + 1) * BATCH]], temperature)
            loss = (sse + beta * kl).mean()
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1000.0 * (3 if warming else 1))
            optimiser.step()
            step += 1
        model.eval()
        with torch.no_grad():
            sse, kl, features = model(valid, 0.0 if args.family == "poisson" else 1.0)
        print(
            f"epoch {epoch + 1}: validation SSE {float(sse.mean()):.2f}, KL {float(kl.mean()):.3f}, "
            f"mean feature {float(features.mean()):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
