"""Metrics of the paper's evaluation protocol (SPEC 4), computed on a trained model."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "ACTIVE_RULE",
    "active_latents",
    "evaluate_model",
    "lifetime_sparsity",
    "population_sparsity",
]

#: The provisional active-latent rule, reported beside its result.
ACTIVE_RULE = (
    "largest gap in the sorted log10 mean KL per latent, if wider than one decade; "
    "latents above the gap are active (no such gap: all are)"
)


def _treves_rolls(z: torch.Tensor, dim: int) -> torch.Tensor:
    """1 - (sum z)^2 / (N sum z^2), rescaled by 1 / (1 - 1/N); an all-zero slice scores 1."""
    z = z.abs().double()
    n = z.shape[dim]
    total, energy = z.sum(dim), z.pow(2).sum(dim)
    sparsity = (1 - total.pow(2) / (n * energy.clamp_min(1e-300))) / (1 - 1 / n)
    return torch.where(energy > 0, sparsity, 1.0)


def lifetime_sparsity(z: torch.Tensor) -> float:
    """Treves-Rolls sparsity of each latent across samples, averaged over latents. z: (N, K)."""
    return float(_treves_rolls(z, 0).mean())


def population_sparsity(z: torch.Tensor) -> float:
    """Treves-Rolls sparsity of each sample across latents, averaged over samples. z: (N, K)."""
    return float(_treves_rolls(z, 1).mean())


def active_latents(kl_per_latent: torch.Tensor) -> torch.Tensor:
    """Boolean (K,) mask of active latents under :data:`ACTIVE_RULE`.

    Args:
        kl_per_latent: (K,) mean KL of each latent over the data.
    """
    log_kl = kl_per_latent.double().clamp_min(1e-30).log10()
    order = torch.argsort(log_kl, descending=True)
    sorted_log = log_kl[order]
    active = torch.ones_like(log_kl, dtype=torch.bool)
    if sorted_log.numel() < 2:
        return active
    gaps = sorted_log[:-1] - sorted_log[1:]
    widest = int(torch.argmax(gaps))
    if float(gaps[widest]) > 1.0:
        active[order[widest + 1 :]] = False
    return active


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module, data: np.ndarray | torch.Tensor, batch_size: int = 2000, seed: int = 0
) -> dict:
    """Validation metrics of a VAE with hard samples (temperature 0) and the posterior mean.

    SSE and mse_map are sums over the pixels of one sample, averaged over samples; NELBO is
    SSE + KL (beta = 1). ``r2`` is one minus the total SSE over the total energy of the samples
    about their own means; ``r2_median`` is the median of the same ratio taken per sample (the mean
    of per-sample ratios is dominated by the few near-flat patches).

    Args:
        model: a :class:`poisson_vae.vae.VAE`.
        data: (N, C, H, W) validation samples.
        batch_size: samples per forward pass.
        seed: seed of the hard samples.

    Returns:
        A JSON-serialisable dict of metrics, with ``kl_per_latent`` (K,) as a list.
    """
    model.eval()
    device = next(model.parameters()).device
    data = torch.as_tensor(data)
    generator = torch.Generator(device=device).manual_seed(seed)
    sse, mse_map, kl, energy, codes = [], [], [], [], []
    kl_per_latent = 0.0
    for start in range(0, len(data), batch_size):
        x = data[start : start + batch_size].to(device)
        terms = model(x, temperature=0.0, method="mc", generator=generator)
        map_reconstruction = model.decode_point(terms.code)
        sse.append(terms.sse)
        mse_map.append((x - map_reconstruction).pow(2).flatten(1).sum(1))
        kl.append(terms.kl)
        centred = x.flatten(1) - x.flatten(1).mean(1, keepdim=True)
        energy.append(centred.pow(2).sum(1))
        codes.append(terms.z.cpu())
        kl_per_latent = kl_per_latent + terms.code.kl.sum(0)
    sse_all, kl_all, energy_all = torch.cat(sse), torch.cat(kl), torch.cat(energy)
    z = torch.cat(codes)
    kl_per_latent = (kl_per_latent / len(data)).cpu()
    active = active_latents(kl_per_latent)
    metrics = {
        "n_samples": len(data),
        "nelbo": float((sse_all + kl_all).mean()),
        "sse": float(sse_all.mean()),
        "kl": float(kl_all.mean()),
        "mse_map": float(torch.cat(mse_map).mean()),
        "r2": float(1 - sse_all.sum() / energy_all.sum()),
        "r2_median": float((1 - sse_all / energy_all.clamp_min(1e-12)).median()),
        "portion_zeros": float((z == 0).double().mean()),
        "lifetime_sparsity": lifetime_sparsity(z),
        "population_sparsity": population_sparsity(z),
        "n_active": int(active.sum()),
        "active_fraction": float(active.double().mean()),
        "active_rule": ACTIVE_RULE,
        "kl_per_latent": kl_per_latent.tolist(),
    }
    if any(isinstance(v, float) and not math.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"evaluation produced non-finite metrics: {metrics}")
    return metrics
