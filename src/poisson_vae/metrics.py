"""Metrics of the paper's evaluation protocol (docs/evaluation.md), computed on a trained model."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "ACTIVE_RULE",
    "active_latents",
    "distance_to_ideal",
    "evaluate_model",
    "explained_variance",
    "lifetime_sparsity",
    "per_sample_r2",
    "population_sparsity",
    "reconstruction_shares",
    "used_directions",
]

#: The active-latent rule, reported beside its result (the same for every family).
ACTIVE_RULE = (
    "score = log10(KL_k / mean KL) + log10(share_k / mean share), share_k = rise of the "
    "reconstruction error when latent k is held at its mean; latents above the widest gap in the "
    "sorted scores are active if that gap exceeds one decade, else all are (each ratio floored "
    "at 1e-3); never a latent whose mean KL is below 1e-6 nats (its posterior is its prior); and, "
    "for continuous codes (Gaussian, Laplace), no more than the number of directions the "
    "reconstructions use: the eigenvalues of their covariance above the widest gap (over one "
    "decade) in the log spectrum"
)
#: The smallest gap (in decades of the score) that separates active from inactive latents.
ACTIVE_GAP = 1.0
#: Relative KL and share below which a latent counts as not contributing at all.
ACTIVE_FLOOR = 1e-3
#: Mean KL (nats) below which a latent is dead whatever the others do: its posterior is its prior,
#: so it carries no information about the input (a fully collapsed model has no active latent).
DEAD_KL = 1e-6


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


def _widest_gap(values: torch.Tensor) -> int | None:
    """How many of ``values`` (sorted in decreasing order, log10) lie above the widest gap, if it
    exceeds :data:`ACTIVE_GAP`; else None."""
    if values.numel() < 2:
        return None
    gaps = values[:-1] - values[1:]
    widest = int(torch.argmax(gaps))
    return widest + 1 if float(gaps[widest]) > ACTIVE_GAP else None


def used_directions(spectrum: torch.Tensor) -> int | None:
    """Directions the reconstructions use: eigenvalues above the widest gap of the log spectrum.

    Args:
        spectrum: (D,) eigenvalues of the covariance of the point reconstructions over the data.

    Returns:
        The count, or None when the spectrum has no gap wider than one decade.
    """
    values = spectrum.double().clamp_min(0).sort(descending=True).values
    if values.numel() == 0 or float(values[0]) <= 0:
        return None
    # Eigenvalues below 1e-10 of the largest are numerically zero.
    return _widest_gap((values / values[0]).clamp_min(1e-10).log10())


def active_latents(
    kl_per_latent: torch.Tensor,
    share_per_latent: torch.Tensor,
    spectrum: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float | None]:
    """Boolean (K,) mask of active latents under :data:`ACTIVE_RULE`, and its score threshold.

    A latent is inactive when the data barely move its posterior (small KL) *and* the decoder barely
    uses it (small share of the reconstruction). Neither alone suffices: a latent can feed the decoder
    a constant, and an unused latent can keep a little KL. The two are combined in one scale-free
    score (log KL + log share, each relative to its mean), cut at the widest gap of the sorted scores,
    so no absolute threshold is tuned per family. The one absolute rule marks the dead: a latent
    whose mean KL is below :data:`DEAD_KL` carries no information, however the others score (else a
    fully collapsed model, with no gap among its scores, would count every latent active).

    A continuous code (a G-VAE, being rotation-invariant) can spread a few signal directions thinly
    over every latent; there no latent stands out, and the count is bounded by the directions its
    reconstructions use (:func:`used_directions`), keeping the latents with the highest scores.
    Pass ``spectrum`` only for such codes: a discrete code (counts, one-hot) may use more latents
    than its reconstructions have directions (an overcomplete sparse code does, by design).

    Args:
        kl_per_latent: (K,) mean KL of each latent over the data.
        share_per_latent: (K,) each latent's contribution to the reconstruction
            (:func:`reconstruction_shares`).
        spectrum: (D,) eigenvalues of the covariance of the point reconstructions of a continuous
            code, or None.

    Returns:
        (mask, threshold): ``threshold`` is the lowest active score, None when all are active.
    """
    kl = kl_per_latent.double().clamp_min(0)
    share = share_per_latent.double().clamp_min(0)
    relative_kl = kl / kl.mean().clamp_min(1e-300)
    relative_share = share / share.mean().clamp_min(1e-300)
    # Below a thousandth of the average, a KL or a share is indistinguishable from zero (the shares
    # are estimated on finite data); flooring there keeps the widest gap from opening among zeros.
    floor = ACTIVE_FLOOR
    score = relative_kl.clamp_min(floor).log10() + relative_share.clamp_min(floor).log10()
    ordered, order = torch.sort(score, descending=True)
    n_active = _widest_gap(ordered) or len(score)
    directions = used_directions(spectrum) if spectrum is not None else None
    if directions is not None:
        n_active = min(n_active, directions)
    active = torch.zeros_like(score, dtype=torch.bool)
    active[order[:n_active]] = True
    active &= kl >= DEAD_KL
    threshold = None if n_active == len(score) else float(ordered[n_active - 1])
    return active, threshold


@torch.no_grad()
def reconstruction_shares(
    model: torch.nn.Module, data: torch.Tensor, max_samples: int = 2000
) -> torch.Tensor:
    """(K,) rise of the mean squared error of the point reconstruction when a latent is held at its mean.

    For a linear decoder this is computed in closed form for all latents at once; otherwise each
    latent is ablated in turn on up to ``max_samples`` samples. Negative rises (a latent whose
    variation hurts) count as zero.

    Args:
        model: a :class:`poisson_vae.vae.VAE`.
        data: (N, C, H, W) samples.
        max_samples: samples used (evenly spaced over ``data``).
    """
    with _eval_mode(model):
        return _reconstruction_shares(model, data, max_samples)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluation mode (no dropout) for the block, then the model's previous mode."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _reconstruction_shares(model: torch.nn.Module, data: torch.Tensor, max_samples: int) -> torch.Tensor:
    from .nets import LinearDecoder

    device = next(model.parameters()).device
    # Evenly spaced samples: datasets are often stored image by image or class by class.
    x = torch.as_tensor(data[:: max(1, len(data) // max_samples)][:max_samples]).to(device)
    point = model.latent.point(model.encode(x))  # (N, K)
    centred = point - point.mean(0)
    residual = (x - model.decoder(point)).flatten(1)  # (N, D)
    decoder = model.decoder
    if isinstance(decoder, LinearDecoder):
        # E||r + (z_k - m_k) phi_k||^2 - E||r||^2 = Var(z_k) ||phi_k||^2 + 2 E[(z_k - m_k) phi_k . r]
        atoms = decoder.dictionary  # (D, K)
        rise = centred.pow(2).mean(0) * atoms.pow(2).sum(0)
        rise = rise + 2 * (centred * (residual @ atoms)).mean(0)
        return rise.clamp_min(0).cpu()
    base = residual.pow(2).sum(1).mean()
    rises = []
    for k in range(point.shape[1]):
        held = point.clone()
        held[:, k] = point[:, k].mean()
        error = (x - decoder(held)).flatten(1).pow(2).sum(1).mean()
        rises.append(float(error - base))
    return torch.tensor(rises).clamp_min(0)


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
        A JSON-serialisable dict of metrics, with ``kl_per_latent`` and ``share_per_latent`` (K,)
        as lists.
    """
    with _eval_mode(model):
        return _evaluate_model(model, torch.as_tensor(data), batch_size, seed)


def _evaluate_model(model: torch.nn.Module, data: torch.Tensor, batch_size: int, seed: int) -> dict:
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    sse, mse_map, kl, energy, codes = [], [], [], [], []
    kl_per_latent = 0.0
    total, outer = 0.0, 0.0  # sums of the point reconstructions and their outer products
    for start in range(0, len(data), batch_size):
        x = data[start : start + batch_size].to(device)
        terms = model(x, temperature=0.0, method="mc", generator=generator)
        map_reconstruction = model.decode_point(terms.code)
        flat = map_reconstruction.flatten(1).double()
        total, outer = total + flat.sum(0), outer + flat.T @ flat
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
    shares = reconstruction_shares(model, data)
    mean = total / len(data)
    spectrum = torch.linalg.eigvalsh(outer / len(data) - torch.outer(mean, mean)).flip(0).cpu()
    bound = spectrum if model.latent.continuous else None
    active, threshold = active_latents(kl_per_latent, shares, bound)
    metrics = {
        "n_samples": len(data),
        "nelbo": float((sse_all + kl_all).mean()),
        "sse": float(sse_all.mean()),
        "kl": float(kl_all.mean()),
        "mse_map": float(torch.cat(mse_map).mean()),
        **explained_variance(sse_all, energy_all),
        "portion_zeros": float((z == 0).double().mean()),
        "lifetime_sparsity": lifetime_sparsity(z),
        "population_sparsity": population_sparsity(z),
        "n_active": int(active.sum()),
        "active_fraction": float(active.double().mean()),
        "active": active.tolist(),
        "active_rule": ACTIVE_RULE,
        "active_threshold": threshold,
        "kl_per_latent": kl_per_latent.tolist(),
        "share_per_latent": shares.tolist(),
        "n_directions": used_directions(spectrum),
        "reconstruction_spectrum": spectrum.tolist(),
    }
    bad = sorted(
        name for name, value in metrics.items() if isinstance(value, float) and not math.isfinite(value)
    )
    if bad:
        raise FloatingPointError(
            f"evaluation produced non-finite {', '.join(bad)} (NELBO {metrics['nelbo']:.4g}); the "
            "model's outputs overflow: check its training log"
        )
    return metrics


def explained_variance(sse: torch.Tensor, energy: torch.Tensor) -> dict[str, float | None]:
    """``r2`` (pooled: one minus the total squared error over the total energy of the samples
    about their own means), ``r2_median`` (the median of the per-sample ratio over the samples
    that vary) and ``r2_mean`` (its mean, as the iterative VAEs' paper reports it: see
    :func:`per_sample_r2`); None where undefined: no sample varies (constant images, or 1 x 1
    pixel).

    Args:
        sse: (N,) squared error of each sample's reconstruction.
        energy: (N,) squared deviation of each sample from its own mean.
    """
    varying = energy > 0
    if not bool(varying.any()):
        return {"r2": None, "r2_median": None, "r2_mean": None}
    ratio = 1 - sse[varying] / energy[varying]
    return {
        "r2": float(1 - sse.sum() / energy.sum()),
        "r2_median": float(ratio.median()),
        "r2_mean": float(per_sample_r2(sse, energy).mean()),
    }


def per_sample_r2(sse: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """(N,) each sample's R^2 about its own mean, ``1 - sse / (energy + 1.19e-7)`` (the small
    constant as in the iterative VAEs' release, so that a flat sample gives a large negative value
    rather than a division by zero).

    Args:
        sse: (N,) squared error of each sample's reconstruction.
        energy: (N,) squared deviation of each sample from its own mean.
    """
    return 1 - sse / (energy + 1.19e-7)


def distance_to_ideal(r2: float, portion_zeros: float) -> float:
    """The distance of a code to the ideal point of perfect reconstruction with no spikes,
    ``sqrt((1 - R^2)^2 + (1 - portion of zeros)^2)``: one number for the rate-distortion trade-off."""
    return math.hypot(1 - r2, 1 - portion_zeros)
