"""Iterative VAEs: inference as dynamics, with no encoder (the iP-VAE of Vafaii, Galor & Yates,
"Brain-like variational inference", NeurIPS 2025; docs/iterative.md).

The posterior's parameters are a state, updated step by step by the prediction error fed back
through the decoder's own dictionary Phi (D, K). For the iP-VAE the state is the posterior
log-rates u (B, K), membrane potentials; one step from u_{t-1} is

    z' ~ Pois(exp(u_{t-1}))                                    (spikes, a fresh draw)
    du = alpha [Phi^T S^{-1} (x - Phi z') - b]                  (feed-forward drive, competition
                                                                through the spikes, a leak b)
    du <- C(max(du, -8), c_du),   u_t = C(max(u_{t-1} + du, -8), c_u)

with S = diag(sigma_dec^2) the decoder's learned per-pixel variances, alpha = exp(log_step) a
learned step, b = exp(log_bias) a learned positive drive per latent, C(v, c) = c - softplus(c - v)
a smooth upper clamp and a hard floor at -8; the clamps c rise from 2 to 10 over the start of
training. This is the natural gradient of the free energy in log-rate coordinates (the Poisson
Fisher information, the rate, cancels the rate of the Euclidean gradient). After each update a
second fresh draw z_t ~ Pois(exp(u_t)) is decoded, and the loss of step t is

    NLL_t = -log N(x; Phi z_t, S),     KL_t = KL(q_t || q_{t-1}),

q_{-1} the learned prior exp(u_init). The loss of a batch is (256 / D) x the batch mean of
(1/T) sum_t (NLL_t + beta KL_t), backpropagated through the unrolled steps (relaxed spikes in
training, exact Poisson draws at temperature 0). The published KL uses the posterior rate as
its prefactor, exp(u_t) f(exp(du)) with f(y) = 1 - y + y log y; ``kl_prefactor="prior"`` uses the
exact Poisson KL exp(u_{t-1}) f(exp(du)) instead.

The Gaussian baselines keep (mu, log sigma) as their state and take natural-gradient steps with
two learned step sizes: the iG-VAE decodes z ~ N(mu, sigma) itself, the iG-relu-VAE decodes
relu(z) times a learned gain per latent. Hand-written: the dynamics are the model.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .distributions import poisson_kl_residual, relaxed_poisson_rsample
from .metrics import distance_to_ideal, lifetime_sparsity, per_sample_r2, population_sparsity

if TYPE_CHECKING:
    from .config import ModelConfig

__all__ = [
    "EVALUATION_STEPS",
    "ITERATIVE_FAMILIES",
    "KL_PREFACTORS",
    "PROBE_STEPS",
    "IterativeState",
    "IterativeTerms",
    "IterativeVAE",
    "convergence",
    "evaluate_iterative",
    "linear_probe",
    "rates_at_steps",
    "save_iterative_figures",
    "soft_upper",
]

#: The latent families with an iterative model, by name: the iP-, iG- and iG-relu-VAE.
ITERATIVE_FAMILIES = ("poisson", "gaussian", "gaussian-relu")
#: The KL prefactors of the iP-VAE: the published posterior rate, or the exact Poisson KL's prior.
KL_PREFACTORS = ("posterior", "prior")
#: The hard floor of the log-rates and of their steps.
FLOOR = -8.0
#: Added to every rate, as the original (float32's epsilon).
RATE_EPSILON = 1.19e-7
#: The decoder's log standard deviation is soft-clamped to +-3.45 (variances 0.001 to 1000).
LOG_SCALE_LIMIT = 3.45
#: Clamp thresholds at the start and the end of their annealing: the Poisson state and step
#: (upper, soft), the Gaussian mean and log-scale states and steps (symmetric, tanh).
POISSON_CLAMPS = {"state": (2.0, 10.0), "step": (2.0, 10.0)}
GAUSSIAN_CLAMPS = {
    "state": ((1.0, 7.0), (1.0, 2.0)),
    "step": ((1.0, 7.0), (1.0, 3.0)),
}
#: The loss is scaled by this many pixels over the input's (the original's choice, so that the
#: same beta and gradient clip serve 16 x 16 patches and 28 x 28 digits).
REFERENCE_PIXELS = 256


def soft_upper(values: torch.Tensor, limit: float) -> torch.Tensor:
    """``limit - softplus(limit - values)``: close to ``values`` well below ``limit``, never above it."""
    return limit - F.softplus(limit - values)


def _annealed(bounds: tuple[float, float], progress: float) -> float:
    start, end = bounds
    return start + min(max(progress, 0.0), 1.0) * (end - start)


@dataclass
class IterativeState:
    """The posterior parameters after a step, each (B, K): the log-rates (iP-VAE), or the mean
    and the log standard deviation (iG-VAEs, ``log_scale`` set)."""

    location: torch.Tensor
    log_scale: torch.Tensor | None = None

    def detach_from(self, initial: IterativeState) -> IterativeState:
        """The state with the gradient path through the earlier steps cut, but the one to the
        learned initial state kept (``initial + (state - initial).detach()``): truncated
        backpropagation through time."""

        def cut(value: torch.Tensor | None, start: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else start + (value - start).detach()

        return IterativeState(
            cut(self.location, initial.location), cut(self.log_scale, initial.log_scale)
        )


@dataclass
class IterativeTerms:
    """The per-sample loss terms of an unrolled inference, each averaged over its T steps.

    Attributes:
        nll: (B,) negative log-likelihood of the decoded samples.
        kl: (B,) KL of each step's posterior from the previous step's.
        sse: (B,) squared error of the decoded samples (for reports; not the loss).
        state: the final state.
        z: (B, K) the last decoded sample (after the activation).
        scale: the loss's factor, ``REFERENCE_PIXELS / D``.
    """

    nll: torch.Tensor
    kl: torch.Tensor
    sse: torch.Tensor
    state: IterativeState
    z: torch.Tensor
    scale: float

    def loss(self, beta: float) -> torch.Tensor:
        """Scalar: ``scale`` x the batch mean of NLL + beta KL."""
        return self.scale * (self.nll + beta * self.kl).mean()


class IterativeVAE(nn.Module):
    """An iterative VAE on flattened inputs of ``n_inputs`` values with ``n_latents`` latents.

    Parameters: the dictionary Phi (D, K), starting N(0, init_std^2); the decoder's log standard
    deviations (1, D), soft-clamped; the log of the positive drive b (1, K), starting at -3; the
    log step size(s) (one; two for the Gaussian families); the initial state (1, K) (Poisson:
    log-rates drawn from U(-6, -4); Gaussian: mean and log sigma 0); and for the iG-relu-VAE the
    log gain of each latent (1, K).

    Args:
        family: one of :data:`ITERATIVE_FAMILIES`.
        n_inputs: D.
        n_latents: K.
        init_std: standard deviation of the initial dictionary (the original: 1e-4).
        kl_prefactor: one of :data:`KL_PREFACTORS` (Poisson only).
        config: the run's model configuration it was built from, when built by
            :func:`poisson_vae.vae.build_vae` (saved with the weights).
    """

    def __init__(
        self,
        family: str,
        n_inputs: int,
        n_latents: int,
        init_std: float = 1e-4,
        kl_prefactor: str = "posterior",
        config: ModelConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        if family not in ITERATIVE_FAMILIES:
            raise ValueError(f"no iterative model for {family!r}; choose one of {ITERATIVE_FAMILIES}")
        if kl_prefactor not in KL_PREFACTORS:
            raise ValueError(f"kl_prefactor must be one of {KL_PREFACTORS}, got {kl_prefactor!r}")
        self.family, self.kl_prefactor = family, kl_prefactor
        self.poisson = family == "poisson"
        self.dictionary = nn.Parameter(torch.randn(n_inputs, n_latents) * init_std)
        self.decoder_log_scale = nn.Parameter(torch.zeros(1, n_inputs))
        self.log_bias = nn.Parameter(torch.full((1, n_latents), -3.0))
        if self.poisson:
            self.log_step = nn.Parameter(torch.zeros(1))
            self.initial = nn.Parameter(torch.empty(1, n_latents).uniform_(-6.0, -4.0))
        else:
            self.log_step = nn.Parameter(torch.zeros(2))
            self.initial = nn.Parameter(torch.zeros(2, n_latents))  # mean, log sigma
        self.log_gain = nn.Parameter(torch.zeros(1, n_latents)) if family == "gaussian-relu" else None

    @property
    def final_temperature(self) -> float:
        """The sampler temperature training ends at (Poisson: 0.01; the Gaussians sample at 1)."""
        return 0.01 if self.poisson else 1.0

    @property
    def evaluation_temperature(self) -> float:
        """The temperature of evaluation: exact Poisson spikes (0); Gaussian draws stay at 1."""
        return 0.0 if self.poisson else 1.0

    # --- the model's pieces ------------------------------------------------------------------
    def decoder_variance(self) -> torch.Tensor:
        """(1, D) the decoder's variances sigma_dec^2."""
        log_scale = LOG_SCALE_LIMIT * torch.tanh(self.decoder_log_scale / LOG_SCALE_LIMIT)
        return torch.exp(2 * log_scale)

    def initial_state(self, batch: int) -> IterativeState:
        """The learned prior, expanded to ``batch`` rows."""
        if self.poisson:
            return IterativeState(self.initial.expand(batch, -1))
        return IterativeState(self.initial[:1].expand(batch, -1), self.initial[1:].expand(batch, -1))

    def sample(
        self, state: IterativeState, temperature: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A fresh draw from the posterior ``state``: (the decoded code a(z), (B, K); the
        standard-normal noise of a Gaussian draw, or None). Poisson spikes are relaxed at a
        temperature > 0 and exact Poisson counts at 0; Gaussian draws ignore the temperature."""
        if self.poisson:
            rate = state.location.exp() + RATE_EPSILON
            if temperature > 0:
                return relaxed_poisson_rsample(rate, temperature, generator=generator), None
            return torch.poisson(rate.detach(), generator=generator), None
        noise = torch.randn(state.location.shape, generator=generator, device=state.location.device).to(
            state.location.dtype
        )
        z = state.location + state.log_scale.exp() * noise
        return self.activation(z), noise

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        """What the decoder reads of a Gaussian draw: z itself, or relu(z) x gain (iG-relu)."""
        return z if self.log_gain is None else F.relu(z) * self.log_gain.exp()

    def posterior_mean(self, state: IterativeState) -> torch.Tensor:
        """(B, K) what the posterior decodes to on average: the rates exp(u) (iP-VAE), or the
        activation of the Gaussian means."""
        return state.location.exp() if self.poisson else self.activation(state.location)

    def decode_point(self, state: IterativeState) -> torch.Tensor:
        """(B, D) the decoded posterior mean (flat)."""
        return self.posterior_mean(state) @ self.dictionary.T

    def infer(
        self, x: torch.Tensor, n_steps: int | None = None, generator: torch.Generator | None = None
    ) -> IterativeState:
        """The posterior of x (B, D) or (B, C, H, W) after ``n_steps`` (default: the training
        horizon of the configuration, else 16) at the evaluation temperature, without gradients."""
        if n_steps is None:
            n_steps = self.config.n_steps if self.config is not None else 16
        state = self.initial_state(x.shape[0])
        with torch.no_grad():
            temperature = self.evaluation_temperature
            for _, new, _ in self.trajectory(x.flatten(1), n_steps, temperature, generator=generator):
                state = new
        return state

    def kl(self, state: IterativeState, previous: IterativeState) -> torch.Tensor:
        """(B,) KL of the posterior ``state`` from ``previous``, summed over latents."""
        if self.poisson:
            change = state.location - previous.location
            reference = state.location if self.kl_prefactor == "posterior" else previous.location
            return poisson_kl_residual(reference, change).sum(-1)
        variance_ratio = torch.exp(2 * (state.log_scale - previous.log_scale))
        shift = (state.location - previous.location) ** 2 * torch.exp(-2 * previous.log_scale)
        return 0.5 * (variance_ratio + shift - 1 - 2 * (state.log_scale - previous.log_scale)).sum(-1)

    def step(
        self,
        x: torch.Tensor,
        state: IterativeState,
        temperature: float,
        clamp: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> IterativeState:
        """One inference step from ``state`` on flat inputs x (B, D).

        Args:
            clamp: how far the clamp thresholds have been annealed, 0 (start) to 1 (end, and at
                evaluation).
        """
        variance = self.decoder_variance()
        code, noise = self.sample(state, temperature, generator)
        error = (x - code @ self.dictionary.T) / variance  # (B, D) precision-weighted
        feedback = error @ self.dictionary  # (B, K) Phi^T S^{-1} (x - Phi a(z))
        bias = self.log_bias.exp()
        if self.poisson:
            change = self.log_step.exp() * (feedback - bias)
            change = soft_upper(change.clamp_min(FLOOR), _annealed(POISSON_CLAMPS["step"], clamp))
            location = soft_upper(
                (state.location + change).clamp_min(FLOOR),
                _annealed(POISSON_CLAMPS["state"], clamp),
            )
            return IterativeState(location)
        z = state.location + state.log_scale.exp() * noise
        slope = 1.0 if self.log_gain is None else (z > 0).to(z.dtype) * self.log_gain.exp()
        drive = slope * feedback  # the reconstruction's negative gradient in z
        scale = state.log_scale.exp()
        step_mean, step_log_scale = self.log_step.exp()
        change_mean = step_mean * (scale**2 * drive - bias)  # Fisher 1 / sigma^2 for the mean
        change_log_scale = step_log_scale * 0.5 * drive * noise * scale  # Fisher 2 for log sigma
        (mean_step, log_scale_step), (mean_state, log_scale_state) = (
            [_annealed(bounds, clamp) for bounds in GAUSSIAN_CLAMPS[kind]] for kind in ("step", "state")
        )
        mean = state.location + mean_step * torch.tanh(change_mean / mean_step)
        log_scale = state.log_scale + log_scale_step * torch.tanh(change_log_scale / log_scale_step)
        return IterativeState(
            mean_state * torch.tanh(mean / mean_state),
            log_scale_state * torch.tanh(log_scale / log_scale_state),
        )

    # --- unrolled inference --------------------------------------------------------------------
    def trajectory(
        self,
        x: torch.Tensor,
        n_steps: int,
        temperature: float,
        clamp: float = 1.0,
        truncation: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[IterativeState, IterativeState, torch.Tensor]]:
        """Yield (previous state, state, decoded code a(z_t) (B, K)) after each of ``n_steps``
        steps from the learned prior, on flat inputs x (B, D).

        Args:
            truncation: cut the gradient path every this many steps (truncated backpropagation,
                the path to the learned prior kept); None backpropagates through all steps.
        """
        start = state = self.initial_state(x.shape[0])
        for t in range(n_steps):
            if truncation and t and t % truncation == 0:
                state = state.detach_from(start)
            new = self.step(x, state, temperature, clamp, generator)
            code, _ = self.sample(new, temperature, generator)
            yield state, new, code
            state = new

    def forward(
        self,
        x: torch.Tensor,
        n_steps: int,
        temperature: float = 0.0,
        clamp: float = 1.0,
        truncation: int | None = None,
        generator: torch.Generator | None = None,
    ) -> IterativeTerms:
        """The loss terms of ``n_steps`` of inference on x (B, D) or (B, C, H, W)."""
        x = x.flatten(1)
        variance = self.decoder_variance()
        log_norm = 0.5 * (variance.log() + math.log(2 * math.pi)).sum()
        nll = kl = sse = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for previous, state, code in self.trajectory(
            x, n_steps, temperature, clamp, truncation, generator
        ):
            residual = (x - code @ self.dictionary.T) ** 2
            nll = nll + 0.5 * (residual / variance).sum(-1) + log_norm
            sse = sse + residual.sum(-1).detach()
            kl = kl + self.kl(state, previous)
        return IterativeTerms(
            nll / n_steps, kl / n_steps, sse / n_steps, state, code, REFERENCE_PIXELS / x.shape[1]
        )


#: Steps of inference at evaluation (the release evaluates 1000, far past its 16 training steps).
EVALUATION_STEPS = 1000
#: The per-step records of :func:`convergence`.
STEP_METRICS = ("r2", "mse", "portion_zeros", "kl", "step_norm", "distance")


def _unrolled(
    model: IterativeVAE, x: torch.Tensor, n_steps: int, generator: torch.Generator | None
) -> tuple[dict[str, list[float]], IterativeState, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums over the batch x (B, D) of each step's records (``distance`` left out), the final
    state, the final decoded code (B, K), its squared error (B,) and each sample's energy about
    its own mean (B,), at the evaluation temperature, without gradients."""
    energy = (x - x.mean(1, keepdim=True)).pow(2).sum(1)
    sums: dict[str, list[float]] = {key: [] for key in STEP_METRICS if key != "distance"}
    state, code, sse = model.initial_state(x.shape[0]), None, None
    for previous, state, code in model.trajectory(
        x, n_steps, model.evaluation_temperature, generator=generator
    ):
        sse = (x - code @ model.dictionary.T).pow(2).sum(1)
        sums["r2"].append(float(per_sample_r2(sse, energy).double().sum()))
        sums["mse"].append(float(sse.double().sum()))
        sums["portion_zeros"].append(float((code == 0).double().mean(1).sum()))
        sums["kl"].append(float(model.kl(state, previous).double().sum()))
        change = (state.location - previous.location).norm(dim=1)
        sums["step_norm"].append(float(change.double().sum()))
    return sums, state, code, sse, energy


def _per_step(sums: dict[str, list[float]], n: int, energy: float) -> dict[str, list[float]]:
    """Per-step means of the sums over ``n`` samples, the pooled R^2 (``energy``: the samples'
    total energy about their own means) and the distance to the ideal point."""
    found = {key: [value / n for value in values] for key, values in sums.items()}
    found["r2_pooled"] = [1 - sse / energy if energy > 0 else math.nan for sse in sums["mse"]]
    found["distance"] = [
        distance_to_ideal(r2, zeros) for r2, zeros in zip(found["r2"], found["portion_zeros"])
    ]
    return found


@torch.no_grad()
def convergence(
    model: IterativeVAE,
    x: torch.Tensor,
    n_steps: int = EVALUATION_STEPS,
    generator: torch.Generator | None = None,
) -> dict:
    """How inference converges over ``n_steps`` steps on x (B, D) or (B, C, H, W), at the
    evaluation temperature (exact Poisson spikes; Gaussian draws at temperature 1).

    Returns:
        ``{"step": [1 .. n_steps], and per step: "r2" (the mean per-sample R^2 of the decoded
        sample, :func:`~poisson_vae.metrics.per_sample_r2`), "r2_pooled" (one minus the total
        squared error over the samples' total energy about their own means: unlike the mean, not
        dominated by nearly flat samples), "mse" (its squared error summed over
        pixels, mean over samples), "portion_zeros" (of the decoded code), "kl" (of each step's
        posterior from the previous one), "step_norm" (the norm of the change of the log-rates,
        or of the Gaussian means, mean over samples), "distance" (to the ideal point, from "r2"
        and "portion_zeros"); and at the last step "r2_map" (decoding the posterior mean:
        :meth:`IterativeVAE.decode_point`) and "distance_map"}``.
    """
    with _evaluating(model):
        x = x.flatten(1)
        sums, state, _, _, energy = _unrolled(model, x, n_steps, generator)
        found = _per_step(sums, x.shape[0], float(energy.double().sum()))
        sse_map = (x - model.decode_point(state)).pow(2).sum(1)
        r2_map = float(per_sample_r2(sse_map, energy).mean())
        return {
            "step": list(range(1, n_steps + 1)),
            **found,
            "r2_map": r2_map,
            "distance_map": distance_to_ideal(r2_map, found["portion_zeros"][-1]),
        }


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate_iterative(
    model: IterativeVAE,
    data: torch.Tensor | np.ndarray,
    n_steps: int = EVALUATION_STEPS,
    batch_size: int = 2000,
    seed: int = 0,
) -> dict:
    """Validation metrics of an iterative VAE after ``n_steps`` of inference, and how they
    converged.

    At the last step: ``r2_mean`` (the mean per-sample R^2 of the decoded spikes), ``r2`` (pooled:
    one minus the total squared error over the samples' total energy about their own means),
    ``sse`` (of the spikes) and ``mse_map`` (of the decoded posterior mean), summed over pixels
    and averaged over samples, ``r2_map``, ``portion_zeros``, ``distance`` and ``distance_map``
    (to the ideal point), the lifetime and population sparsity of the spikes; ``nelbo``, ``kl``:
    the trained objective at beta 1 (the mean over the training horizon's steps of the negative
    log-likelihood and the KL between steps); ``convergence``: the per-step records of
    :func:`convergence` over all samples.

    Args:
        model: the iterative VAE.
        data: (N, C, H, W) or (N, D) validation samples.
        n_steps: steps of inference.
        batch_size: samples per batch.
        seed: seed of the spikes.
    """
    data = torch.as_tensor(data)
    device = model.dictionary.device
    generator = torch.Generator(device=device).manual_seed(seed)
    horizon = model.config.n_steps if model.config is not None else 16
    totals: dict[str, list[float]] = {}
    objective = {"nelbo": 0.0, "kl": 0.0}
    sse = mse_map = energy = r2_map = 0.0
    codes = []
    with _evaluating(model):
        for start in range(0, len(data), batch_size):
            x = data[start : start + batch_size].to(device).flatten(1)
            terms = model(x, horizon, model.evaluation_temperature, generator=generator)
            objective["nelbo"] += float((terms.nll + terms.kl).double().sum())
            objective["kl"] += float(terms.kl.double().sum())
            sums, state, code, errors, own = _unrolled(model, x, n_steps, generator)
            for key, values in sums.items():
                totals[key] = [a + b for a, b in zip(totals.get(key, [0.0] * n_steps), values)]
            errors_map = (x - model.decode_point(state)).pow(2).sum(1)
            sse += float(errors.double().sum())
            mse_map += float(errors_map.double().sum())
            energy += float(own.double().sum())
            r2_map += float(per_sample_r2(errors_map, own).double().sum())
            codes.append(code.cpu())
    n = len(data)
    steps = _per_step(totals, n, energy)
    z = torch.cat(codes)
    last = {key: values[-1] for key, values in steps.items()}
    r2_map /= n
    return {
        "n_samples": n,
        "n_steps": n_steps,
        "nelbo": objective["nelbo"] / n,
        "kl": objective["kl"] / n,
        "sse": sse / n,
        "mse_map": mse_map / n,
        "r2": 1 - sse / energy if energy > 0 else None,
        "r2_mean": last["r2"],
        "r2_map": r2_map,
        "portion_zeros": last["portion_zeros"],
        "distance": last["distance"],
        "distance_map": distance_to_ideal(r2_map, last["portion_zeros"]),
        "lifetime_sparsity": lifetime_sparsity(z),
        "population_sparsity": population_sparsity(z),
        "convergence": {"step": list(range(1, n_steps + 1)), **steps},
    }


#: The steps after which the linear probe reads the firing rates (the release saves every 50th).
PROBE_STEPS = (1, 16, 50, 100, 250, 500, 1000)


@torch.no_grad()
def rates_at_steps(
    model: IterativeVAE,
    data: torch.Tensor | np.ndarray,
    steps: tuple[int, ...],
    batch_size: int = 2000,
    seed: int = 0,
) -> dict[int, np.ndarray]:
    """``{step: (N, K) float32 posterior means after that many steps}`` of inference on ``data`` (N, D)
    or (N, C, H, W) at the evaluation temperature: an iP-VAE's firing rates exp(u_t), a Gaussian
    model's activated means."""
    data = torch.as_tensor(data)
    device = model.dictionary.device
    generator = torch.Generator(device=device).manual_seed(seed)
    found: dict[int, list[np.ndarray]] = {step: [] for step in steps}
    with _evaluating(model):
        for start in range(0, len(data), batch_size):
            x = data[start : start + batch_size].to(device).flatten(1)
            trajectory = model.trajectory(
                x, max(steps), model.evaluation_temperature, generator=generator
            )
            for step, (_, state, _) in enumerate(trajectory, start=1):
                if step in found:
                    found[step].append(model.posterior_mean(state).float().cpu().numpy())
    return {step: np.concatenate(parts) for step, parts in found.items()}


def linear_probe(
    model: IterativeVAE,
    train: np.ndarray,
    train_labels: np.ndarray,
    valid: np.ndarray,
    valid_labels: np.ndarray,
    steps: tuple[int, ...] = PROBE_STEPS,
    seed: int = 0,
) -> dict[str, list]:
    """The accuracy of a linear read-out of the firing rates after each of ``steps``:
    scikit-learn's ``LogisticRegression`` with its defaults (as the release) fit on the training
    samples' rates and scored on the validation samples'.

    Returns:
        ``{"step": [...], "accuracy": [...]}``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    steps = tuple(sorted(set(steps)))
    fit_on = rates_at_steps(model, train, steps, seed=seed)
    score_on = rates_at_steps(model, valid, steps, seed=seed + 1)
    accuracy = []
    for step in steps:
        with warnings.catch_warnings():  # the release's 100 lbfgs iterations, as published
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier = LogisticRegression().fit(fit_on[step], train_labels)
        accuracy.append(float(classifier.score(score_on[step], valid_labels)))
    return {"step": list(steps), "accuracy": accuracy}


def save_iterative_figures(model: IterativeVAE, metrics: dict, out: str | Path, label: str) -> None:
    """The dictionary (atoms by decreasing norm) and the convergence curves of an evaluated
    iterative VAE, into ``out`` (``dictionary.png``, ``convergence.png``)."""
    from .figures import save_convergence, save_dictionary_figure
    from .runs import Run

    out = Path(out)
    if model.config is not None and len(model.config.input_shape) == 3:
        shape = tuple(model.config.input_shape[1:])
        order = torch.argsort(model.dictionary.detach().norm(dim=0), descending=True)
        title = f"{label}: atoms by decreasing norm"
        save_dictionary_figure(model.dictionary.detach(), shape, out / Run.FIGURE, order, title)
    horizon = model.config.n_steps if model.config is not None else None
    save_convergence({label: metrics["convergence"]}, out / "convergence.png", label, horizon)
