"""Fit a 2-D Gabor function to every atom of a linear dictionary, all atoms at once.

The fitter is hand-written because no well-kept library offers batched Gabor fitting: generic
curve fitters (``scipy.optimize.curve_fit``, lmfit) fit one atom and one start at a time, which is
minutes for a 512-atom dictionary with restarts, and they know nothing about where to start.

The model, on pixel-centre coordinates x = column index, y = row index (y points down the image)::

    g(x, y) = A exp(-(x'^2 / (2 sigma_x^2) + y'^2 / (2 sigma_y^2))) cos(2 pi f x' + phase)
    x' =  (x - x0) cos(theta) + (y - y0) sin(theta)
    y' = -(x - x0) sin(theta) + (y - y0) cos(theta)

Conventions (one representation per Gabor):

- ``orientation`` is theta in degrees, in [0, 180): the direction of the carrier's wave vector
  (perpendicular to the stripes), measured from the +x (column) axis towards +y (down the rows).
  Turning theta by 180 degrees only negates the phase, so the phase absorbs the other half-turn.
- ``sigma_x`` is the envelope's width along the wave vector (across the stripes), ``sigma_y`` its
  length along the stripes; ``aspect = sigma_y / sigma_x`` (> 1: elongated along the stripes, as in
  most V1 simple cells). Because the carrier varies along x' only, no axis swap is needed.
- ``amplitude`` is > 0 and ``phase`` is in [-pi, pi) (0: even, bright centre; -pi/2: odd).
- There is no constant offset: whitened atoms have zero mean up to noise, and an offset would let a
  flat or blob-like atom borrow fit quality from the mean. ``r2`` is taken about the atom's own mean,
  so an atom with a large mean is (rightly) penalised. An all-zero atom gets ``r2 = 0``.

The fit: eight starts per atom, from the two strongest peaks of the zero-padded 2-D FFT amplitude
(frequency and orientation) crossed with the energy of a 2-D analytic signal along each peak (centre
from its centroid or its maximum, sizes from its second moments, or a fixed size) and a lowered
frequency; the carrier's amplitude and phase enter linearly and are solved for exactly at the start.
Then Levenberg-Marquardt on all atoms x starts jointly, in float64 with an analytic Jacobian and one
damping factor per fit, so the independent problems never share a step size: every start runs 10
iterations, the best two per atom run the rest, and the best by SSE is kept. Bounded parameters are
reparameterised through a sigmoid: sigma in [0.5, max(H, W)], frequency in [0, 0.5] cycles/pixel, the
centre within an eighth of the patch side beyond the edge pixels. A lone pixel fits well as a Gabor
of sigma 0.5: read ``envelope_size`` beside ``r2``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields

import numpy as np
import torch

__all__ = ["GaborFit", "GaborParams", "fit_gabors", "gabor_image", "gabor_summary"]

#: The smallest atom side a 2-D Gabor (eight parameters) is fitted to.
MIN_SIDE = 4

# Raw-parameter layout of one fit: five sigmoid-bounded entries, then theta and the carrier weights
# a, b (A cos(u + phase) = a cos(u) + b sin(u) is linear in them, so they need no bound and no start).
_X0, _Y0, _FREQ, _SX, _SY, _THETA, _A, _B = range(8)
_N_BOUNDED = 5
_CENTRE_MARGIN = 0.125  # fraction of the patch side a centre may sit beyond the edge pixels
_SIGMA_MIN = 0.5
_FREQ_MAX = 0.5  # Nyquist
_EXPLORE_ITERATIONS = 10  # iterations every start gets before all but the best few are dropped
_KEPT_STARTS = 2
_CHUNK_ATOMS = 32  # atoms per batch: 32 x 8 starts x 256 pixels x 8 columns of float64 stay in cache


@dataclass
class GaborParams:
    """Parameters of K Gabors, each a (K,) float64 tensor (see the module docstring for conventions).

    Attributes:
        x0, y0: centre in pixels (x0 along columns, y0 along rows; pixel centres are 0 .. W-1).
        orientation: wave-vector direction in degrees, [0, 180).
        frequency: carrier frequency in cycles/pixel.
        phase: carrier phase in radians, [-pi, pi).
        sigma_x: envelope standard deviation along the wave vector (across the stripes), pixels.
        sigma_y: envelope standard deviation along the stripes, pixels.
        amplitude: peak amplitude A > 0.
    """

    x0: torch.Tensor
    y0: torch.Tensor
    orientation: torch.Tensor
    frequency: torch.Tensor
    phase: torch.Tensor
    sigma_x: torch.Tensor
    sigma_y: torch.Tensor
    amplitude: torch.Tensor

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> GaborParams:
        """Parameters from a mapping of names to scalars, arrays or tensors, broadcast to (K,)."""
        names = [field.name for field in fields(cls)]
        missing = sorted(set(names) - set(values))
        if missing:
            raise ValueError(f"Gabor parameters are missing {missing}")
        tensors = [torch.as_tensor(values[name], dtype=torch.float64).reshape(-1) for name in names]
        return cls(*torch.broadcast_tensors(*tensors))

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The parameters as a dict of (K,) tensors."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass
class GaborFit:
    """Best Gabor fit of each of K atoms of shape (H, W).

    Attributes:
        params: the fitted :class:`GaborParams`, (K,) each.
        r2: (K,) 1 - SSE / sum((atom - atom.mean())^2); 0 for an all-zero atom.
        fitted: (K, H, W) the fitted Gabor images.
    """

    params: GaborParams
    r2: torch.Tensor
    fitted: torch.Tensor

    @property
    def envelope_size(self) -> torch.Tensor:
        """(K,) geometric mean sqrt(sigma_x sigma_y) of the envelope widths, pixels."""
        return (self.params.sigma_x * self.params.sigma_y).sqrt()

    @property
    def aspect(self) -> torch.Tensor:
        """(K,) sigma_y / sigma_x: envelope length along the stripes over its width across them."""
        return self.params.sigma_y / self.params.sigma_x

    @property
    def orientation(self) -> torch.Tensor:
        """(K,) wave-vector direction in degrees, [0, 180)."""
        return self.params.orientation

    @property
    def frequency(self) -> torch.Tensor:
        """(K,) carrier frequency in cycles/pixel."""
        return self.params.frequency


# ---------------------------------------------------------------------------------------------------
# The model on natural parameters (B, 8): x0, y0, f, sigma_x, sigma_y, theta, a, b.


def _grid(shape: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (1, H*W) each: x the column index, y the row index."""
    height, width = shape
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64, device=device),
        torch.arange(width, dtype=torch.float64, device=device),
        indexing="ij",
    )
    return x.reshape(1, -1), y.reshape(1, -1)


def _evaluate(
    natural: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, jacobian: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Model images (B, P) and, if asked, their Jacobian (B, P, 8) in the natural parameters."""
    x0, y0, freq, sx, sy, theta, a, b = (column[:, None] for column in natural.unbind(-1))
    cos_t, sin_t = theta.cos(), theta.sin()
    dx, dy = xs - x0, ys - y0
    xp = dx * cos_t + dy * sin_t
    yp = -dx * sin_t + dy * cos_t
    envelope = torch.exp(-0.5 * ((xp / sx).square() + (yp / sy).square()))
    angle = (2 * math.pi) * freq * xp
    cos_u, sin_u = angle.cos(), angle.sin()
    carrier = a * cos_u + b * sin_u
    image = envelope * carrier
    if not jacobian:
        return image, None
    quadrature = envelope * (b * cos_u - a * sin_u)  # d(image)/d(angle)
    d_xp = (2 * math.pi) * freq * quadrature - image * xp / sx.square()
    d_yp = -image * yp / sy.square()
    columns = [
        -d_xp * cos_t + d_yp * sin_t,  # x0
        -d_xp * sin_t - d_yp * cos_t,  # y0
        (2 * math.pi) * xp * quadrature,  # f
        image * xp.square() / sx.pow(3),  # sigma_x
        image * yp.square() / sy.pow(3),  # sigma_y
        d_xp * yp - d_yp * xp,  # theta
        envelope * cos_u,  # a
        envelope * sin_u,  # b
    ]
    return image, torch.stack(columns, dim=-1)


def _bounds(shape: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds (5,) of x0, y0, f, sigma_x, sigma_y."""
    height, width = shape
    margin_x, margin_y = _CENTRE_MARGIN * width, _CENTRE_MARGIN * height
    lower = [-margin_x, -margin_y, 0.0, _SIGMA_MIN, _SIGMA_MIN]
    upper = [width - 1 + margin_x, height - 1 + margin_y, _FREQ_MAX, max(shape), max(shape)]
    as_tensor = lambda values: torch.tensor(values, dtype=torch.float64, device=device)  # noqa: E731
    return as_tensor(lower), as_tensor(upper)


def _to_natural(
    raw: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Natural parameters (B, 8) from raw ones, and the elementwise derivative d natural / d raw."""
    squashed = torch.sigmoid(raw[:, :_N_BOUNDED])
    span = upper - lower
    natural = torch.cat([lower + span * squashed, raw[:, _N_BOUNDED:]], dim=1)
    slope = torch.cat([span * squashed * (1 - squashed), torch.ones_like(raw[:, _N_BOUNDED:])], dim=1)
    return natural, slope


def _to_raw(natural: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Raw parameters (B, 8) from natural ones, clamping bounded entries just inside their bounds."""
    unit = ((natural[:, :_N_BOUNDED] - lower) / (upper - lower)).clamp(1e-4, 1 - 1e-4)
    return torch.cat([torch.logit(unit), natural[:, _N_BOUNDED:]], dim=1)


# ---------------------------------------------------------------------------------------------------
# Starting points.


def _fft_peaks(atoms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Wave vectors (K, 2, 2) of the two strongest distinct FFT peaks (kx, ky in cycles/pixel), and the
    zero-padded spectrum (K, 2H, 2W) they came from."""
    count, height, width = atoms.shape
    centred = atoms - atoms.mean(dim=(1, 2), keepdim=True)
    spectrum = torch.fft.fft2(centred, s=(2 * height, 2 * width))
    ky = torch.fft.fftfreq(2 * height, dtype=torch.float64, device=atoms.device)[:, None]
    kx = torch.fft.fftfreq(2 * width, dtype=torch.float64, device=atoms.device)[None, :]
    kx, ky = kx.expand(2 * height, 2 * width).reshape(-1), ky.expand(2 * height, 2 * width).reshape(-1)
    power = spectrum.abs().reshape(count, -1)
    # A real atom's spectrum is symmetric: keep one half-plane so +k and -k are not two peaks.
    half_plane = (kx > 0) | ((kx == 0) & (ky > 0))
    power = torch.where(half_plane, power, 0.0)
    peaks = []
    for _ in range(2):
        best = power.argmax(dim=1)
        peak = torch.stack([kx[best], ky[best]], dim=1)
        peaks.append(peak)
        # Suppress the peak's neighbourhood (and its mirror) so the second peak is a different one.
        near = torch.minimum(
            (kx - peak[:, :1]).square() + (ky - peak[:, 1:]).square(),
            (kx + peak[:, :1]).square() + (ky + peak[:, 1:]).square(),
        )
        power = torch.where(near < (1.5 / max(height, width)) ** 2, 0.0, power)
    return torch.stack(peaks, dim=1), spectrum


def _envelope_energy(spectrum: torch.Tensor, peak: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Squared magnitude (K, H, W) of the atoms' analytic signal along each peak's wave vector.

    Keeping the half of the spectrum on the peak's side demodulates the carrier, so the magnitude
    follows the Gaussian envelope rather than the stripes.
    """
    height, width = shape
    padded_h, padded_w = spectrum.shape[-2:]
    ky = torch.fft.fftfreq(padded_h, dtype=torch.float64, device=spectrum.device)[:, None]
    kx = torch.fft.fftfreq(padded_w, dtype=torch.float64, device=spectrum.device)[None, :]
    side = kx * peak[:, 0, None, None] + ky * peak[:, 1, None, None]
    analytic = torch.fft.ifft2(torch.where(side > 0, 2 * spectrum, torch.where(side == 0, spectrum, 0)))
    return analytic[:, :height, :width].abs().square()


def _envelope_starts(energy: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Centroid (K, 2), maximum (K, 2) and widths (K, 2) along/across theta of an envelope energy map."""
    count, height, width = energy.shape
    xs, ys = _grid((height, width), energy.device)
    weights = energy.reshape(count, -1)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-300)
    cx, cy = (weights * xs).sum(1), (weights * ys).sum(1)
    dx, dy = xs - cx[:, None], ys - cy[:, None]
    along = dx * theta.cos()[:, None] + dy * theta.sin()[:, None]
    across = -dx * theta.sin()[:, None] + dy * theta.cos()[:, None]
    # The energy of a Gaussian envelope exp(-r^2 / (2 s^2)) has variance s^2 / 2.
    widths = torch.stack([(weights * along.square()).sum(1), (weights * across.square()).sum(1)], 1)
    best = weights.argmax(dim=1)
    maximum = torch.stack([xs[0, best], ys[0, best]], dim=1)
    return torch.stack([cx, cy], dim=1), maximum, (2 * widths).sqrt()


def _starts(atoms: torch.Tensor) -> torch.Tensor:
    """Natural starting parameters (K, S, 8) with S = 8 starts per atom (a, b still zero)."""
    count, height, width = atoms.shape
    peaks, spectrum = _fft_peaks(atoms)
    fixed_size = torch.full((count, 2), max(height, width) / 6, dtype=torch.float64, device=atoms.device)
    starts = []
    for index in range(peaks.shape[1]):
        peak = peaks[:, index]
        freq, theta = peak.norm(dim=1), torch.atan2(peak[:, 1], peak[:, 0])
        centroid, maximum, widths = _envelope_starts(
            _envelope_energy(spectrum, peak, (height, width)), theta
        )
        for centre, size, scale in [
            (centroid, widths, 1.0),
            (maximum, widths, 1.0),
            (centroid, fixed_size, 1.0),
            (centroid, widths, 0.6),  # with few cycles per envelope the FFT peak sits off the carrier
        ]:
            zeros = torch.zeros_like(freq)
            columns = [*centre.unbind(1), scale * freq, *size.unbind(1), theta, zeros, zeros]
            starts.append(torch.stack(columns, dim=1))
    return torch.stack(starts, dim=1)


def _solve_carrier(
    natural: torch.Tensor, targets: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor
) -> torch.Tensor:
    """Natural parameters (B, 8) with a, b set to their least-squares values for the rest."""
    basis = torch.stack(
        [_evaluate(_with_carrier(natural, a, b), xs, ys)[0] for a, b in [(1.0, 0.0), (0.0, 1.0)]], dim=-1
    )
    gram = basis.mT @ basis + 1e-9 * torch.eye(2, dtype=basis.dtype, device=basis.device)
    weights = torch.linalg.solve(gram, basis.mT @ targets[..., None]).squeeze(-1)
    return _with_carrier(natural, weights[:, 0], weights[:, 1])


def _with_carrier(
    natural: torch.Tensor, a: torch.Tensor | float, b: torch.Tensor | float
) -> torch.Tensor:
    """A copy of natural parameters (B, 8) with the carrier weights a, b replaced."""
    natural = natural.clone()
    natural[:, _A], natural[:, _B] = a, b
    return natural


# ---------------------------------------------------------------------------------------------------
# Optimisation.


def _sse(
    raw: torch.Tensor,
    targets: torch.Tensor,
    xs: torch.Tensor,
    ys: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
) -> torch.Tensor:
    """Sum of squared residuals (B,) of raw parameters (B, 8) against targets (B, P)."""
    image, _ = _evaluate(_to_natural(raw, lower, upper)[0], xs, ys)
    return (image - targets).square().sum(dim=1)


def _levenberg_marquardt(
    raw: torch.Tensor,
    targets: torch.Tensor,
    xs: torch.Tensor,
    ys: torch.Tensor,
    bounds: tuple[torch.Tensor, torch.Tensor],
    n_iterations: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine raw parameters (B, 8) against targets (B, P); returns them and their SSE (B,).

    Each of the B problems keeps its own damping and accepts a step only if its own SSE drops, so
    batching changes nothing about any single fit.
    """
    lower, upper = bounds
    loss = _sse(raw, targets, xs, ys, lower, upper)
    damping = torch.full_like(loss, 1e-2)
    for _ in range(n_iterations):
        natural, slope = _to_natural(raw, lower, upper)
        image, jacobian = _evaluate(natural, xs, ys, jacobian=True)
        jacobian = jacobian * slope[:, None, :]
        residual = image - targets
        normal = jacobian.mT @ jacobian
        gradient = jacobian.mT @ residual[..., None]
        # Marquardt's scaling by the diagonal, floored so a saturated sigmoid cannot make it singular.
        diagonal = normal.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12)
        step, info = torch.linalg.solve_ex(
            normal + torch.diag_embed(damping[:, None] * diagonal), -gradient
        )
        candidate = raw + step.squeeze(-1)
        candidate_loss = _sse(candidate, targets, xs, ys, lower, upper)
        better = (info == 0) & torch.isfinite(candidate_loss) & (candidate_loss < loss)
        raw = torch.where(better[:, None], candidate, raw)
        loss = torch.where(better, candidate_loss, loss)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-9, 1e9)
    return raw, loss


def _canonical(natural: torch.Tensor, scale: torch.Tensor) -> GaborParams:
    """GaborParams (K,) from natural parameters (K, 8) of unit-norm atoms rescaled by scale (K,)."""
    theta = torch.remainder(natural[:, _THETA], 2 * math.pi)
    phase = torch.atan2(-natural[:, _B], natural[:, _A])  # a cos u + b sin u = A cos(u + phase)
    flip = theta >= math.pi  # theta + pi with phase -phase is the same Gabor
    theta = torch.where(flip, theta - math.pi, theta)
    phase = torch.where(flip, -phase, phase)
    return GaborParams(
        x0=natural[:, _X0],
        y0=natural[:, _Y0],
        orientation=torch.rad2deg(theta).remainder(180.0),
        frequency=natural[:, _FREQ],
        phase=torch.remainder(phase + math.pi, 2 * math.pi) - math.pi,
        sigma_x=natural[:, _SX],
        sigma_y=natural[:, _SY],
        amplitude=torch.hypot(natural[:, _A], natural[:, _B]) * scale,
    )


# ---------------------------------------------------------------------------------------------------
# Public API.


def gabor_image(params: GaborParams | Mapping[str, object], shape: tuple[int, int]) -> torch.Tensor:
    """Gabor images (K, H, W), float64, from K parameter sets.

    Args:
        params: :class:`GaborParams`, or a mapping with its field names to scalars or (K,) values.
        shape: (H, W) of each image.
    """
    if not isinstance(params, GaborParams):
        params = GaborParams.from_mapping(params)
    theta = torch.deg2rad(params.orientation)
    natural = torch.stack(
        [
            params.x0,
            params.y0,
            params.frequency,
            params.sigma_x,
            params.sigma_y,
            theta,
            params.amplitude * params.phase.cos(),
            -params.amplitude * params.phase.sin(),
        ],
        dim=1,
    ).double()
    xs, ys = _grid(shape, natural.device)
    image, _ = _evaluate(natural, xs, ys)
    return image.reshape(-1, *shape)


def _validated(atoms: torch.Tensor | np.ndarray, shape: tuple[int, int] | None) -> torch.Tensor:
    """Atoms as a float64 (K, H, W) tensor, or a ValueError that says what is wrong."""
    atoms = torch.as_tensor(atoms)
    if atoms.is_complex() or atoms.dtype == torch.bool:
        raise ValueError(f"atoms must be real numbers, got dtype {atoms.dtype}")
    atoms = atoms.detach().to(torch.float64)
    if atoms.ndim == 2:
        if shape is None or math.prod(shape) != atoms.shape[1]:
            raise ValueError(
                f"flat atoms {tuple(atoms.shape)} need shape=(H, W) with H*W = {atoms.shape[1]}"
            )
        atoms = atoms.reshape(atoms.shape[0], *shape)
    elif atoms.ndim != 3:
        raise ValueError(f"atoms must be (K, H, W) or (K, H*W) with shape=, got {tuple(atoms.shape)}")
    if shape is not None and tuple(atoms.shape[1:]) != tuple(shape):
        raise ValueError(f"atoms of shape {tuple(atoms.shape[1:])} do not match shape={tuple(shape)}")
    if atoms.shape[0] == 0 or min(atoms.shape[1:]) < MIN_SIDE:
        raise ValueError(
            f"need at least one atom of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {tuple(atoms.shape)}"
        )
    if not torch.isfinite(atoms).all():
        raise ValueError("atoms contain NaN or infinite values")
    return atoms


def _fit_unit_atoms(
    unit: torch.Tensor, n_iterations: int, bounds: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Best natural parameters (k, 8) for unit-norm atoms (k, H, W).

    All starts run a few iterations; only the best two per atom run the rest, which halves the work
    without changing the winner in practice (a start that is behind after a few steps is in the
    wrong basin).
    """
    count, height, width = unit.shape
    xs, ys = _grid((height, width), unit.device)
    starts = _starts(unit)
    n_starts = starts.shape[1]
    targets = unit.reshape(count, 1, -1).expand(count, n_starts, -1).reshape(count * n_starts, -1)
    raw = _to_raw(_solve_carrier(starts.reshape(count * n_starts, -1), targets, xs, ys), *bounds)
    n_explore = min(n_iterations, _EXPLORE_ITERATIONS)
    raw, loss = _levenberg_marquardt(raw, targets, xs, ys, bounds, n_explore)
    n_kept = min(_KEPT_STARTS, n_starts)
    kept = loss.reshape(count, n_starts).argsort(dim=1)[:, :n_kept]
    rows = torch.arange(count, device=unit.device)[:, None]
    raw = raw.reshape(count, n_starts, -1)[rows, kept].reshape(count * n_kept, -1)
    targets = unit.reshape(count, 1, -1).expand(count, n_kept, -1).reshape(count * n_kept, -1)
    raw, loss = _levenberg_marquardt(raw, targets, xs, ys, bounds, n_iterations - n_explore)
    best = loss.reshape(count, n_kept).argmin(dim=1)
    raw = raw.reshape(count, n_kept, -1)[rows[:, 0], best]
    return _to_natural(raw, *bounds)[0]


@contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with n_threads torch intra-op threads (None: leave the setting), then restore it."""
    previous = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_gabors(
    atoms: torch.Tensor | np.ndarray,
    shape: tuple[int, int] | None = None,
    n_iterations: int = 40,
    n_threads: int | None = 1,
) -> GaborFit:
    """Fit a 2-D Gabor to each atom, all atoms and starts batched (module docstring: details).

    Deterministic for given inputs: the starts come from the atoms and no randomness is drawn. The
    batch is cut into chunks of a few hundred fits only to keep the tensors in cache; the fits are
    independent, so the chunking does not change any result.

    Args:
        atoms: (K, H, W) atoms, or (K, H*W) with ``shape=(H, W)``; on any device.
        shape: (H, W), required for flat atoms.
        n_iterations: Levenberg-Marquardt iterations per fit.
        n_threads: torch CPU threads during the fit, restored afterwards; None keeps torch's setting.
            One is the default because the ops are small: on a 2-core CPU shared with other work,
            two threads made a 3 s fit take 35-130 s (threads waiting at every op for a busy core).

    Returns:
        A :class:`GaborFit` of float64 tensors on the atoms' device.
    """
    atoms = _validated(atoms, shape)
    if n_iterations < 0 or (n_threads is not None and n_threads < 1):
        raise ValueError(f"need n_iterations >= 0 and n_threads >= 1, got {n_iterations}, {n_threads}")
    with _torch_threads(n_threads):
        return _fit(atoms, n_iterations)


def _fit(atoms: torch.Tensor, n_iterations: int) -> GaborFit:
    """fit_gabors on validated float64 atoms (K, H, W)."""
    count, height, width = atoms.shape
    flat = atoms.reshape(count, -1)
    # Unit-norm atoms make the damping floors and SSE comparisons scale-free.
    scale = flat.norm(dim=1)
    unit = (flat / scale.clamp_min(1e-300)[:, None]).reshape(count, height, width)
    bounds = _bounds((height, width), atoms.device)
    natural = torch.cat(
        [_fit_unit_atoms(chunk, n_iterations, bounds) for chunk in unit.split(_CHUNK_ATOMS)], dim=0
    )
    params = _canonical(natural, scale)
    fitted = gabor_image(params, (height, width))
    energy = (flat - flat.mean(dim=1, keepdim=True)).square().sum(dim=1)
    sse = (fitted.reshape(count, -1) - flat).square().sum(dim=1)
    r2 = torch.where(energy > 0, 1 - sse / energy.clamp_min(1e-300), 0.0)
    return GaborFit(params=params, r2=r2, fitted=fitted)


def _quartiles(values: np.ndarray) -> dict[str, float | None]:
    """Median and quartiles of values (N,); None for no values."""
    if values.size == 0:
        return {"median": None, "q25": None, "q75": None}
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}


def _histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, list]:
    """Counts of values (N,) in bins with the given edges; the end bins take values beyond them."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return {"edges": [float(edge) for edge in edges], "counts": [int(count) for count in counts]}


def gabor_summary(fit: GaborFit, threshold: float = 0.8) -> dict:
    """JSON-serialisable summary of a fit: how many atoms are Gabor-like, and what they look like.

    Statistics and histograms of orientation (degrees), frequency (cycles/pixel), envelope size
    (pixels) and aspect (sigma_y / sigma_x) are over the atoms with ``r2 >= threshold`` only.

    Args:
        fit: a :class:`GaborFit` of K atoms.
        threshold: the R^2 an atom needs to count as Gabor-like.
    """
    good = (fit.r2 >= threshold).cpu().numpy()
    height, width = fit.fitted.shape[-2:]
    quantities = {
        "orientation": (fit.orientation, np.linspace(0, 180, 13)),
        "frequency": (fit.frequency, np.linspace(0, _FREQ_MAX, 11)),
        "envelope_size": (fit.envelope_size, np.linspace(_SIGMA_MIN, max(height, width) / 2, 11)),
        "aspect": (fit.aspect, np.geomspace(0.25, 4, 9)),
    }
    summary: dict = {
        "n": int(good.size),
        "threshold": float(threshold),
        "n_gabor": int(good.sum()),
        "fraction_gabor": float(good.mean()),
        "r2_median": float(fit.r2.median()),
    }
    for name, (values, edges) in quantities.items():
        selected = values.cpu().numpy()[good]
        summary[name] = {**_quartiles(selected), "histogram": _histogram(selected, edges)}
    return summary
