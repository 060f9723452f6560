"""Gabor fits: synthetic V1-like Gabors are recovered, white noise is not, bad inputs are refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from poisson_vae.gabor import GaborParams, fit_gabors, gabor_image, gabor_summary

SHAPE = (16, 16)


def random_params(n: int, seed: int) -> dict[str, np.ndarray]:
    """V1-like Gabors on a 16x16 patch: centre in the central 4x4 pixels, any orientation and phase,
    0.08-0.35 cycles/pixel, sigma_x 1.5-4 pixels and aspect sigma_y / sigma_x log-uniform in [0.5, 2].
    Frequency and size are drawn independently, so some atoms carry under half a cycle per sigma."""
    rng = np.random.default_rng(seed)
    sigma_x = rng.uniform(1.5, 4.0, n)
    return {
        "x0": rng.uniform(5.5, 9.5, n),
        "y0": rng.uniform(5.5, 9.5, n),
        "orientation": rng.uniform(0.0, 180.0, n),
        "frequency": rng.uniform(0.08, 0.35, n),
        "phase": rng.uniform(-math.pi, math.pi, n),
        "sigma_x": sigma_x,
        "sigma_y": sigma_x * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n)),
        "amplitude": rng.uniform(0.5, 2.0, n),
    }


def with_noise(images: torch.Tensor, noise_std_ratio: float, seed: int) -> torch.Tensor:
    """Images (K, H, W) plus Gaussian noise of std = noise_std_ratio x each clean image's pixel std."""
    generator = torch.Generator().manual_seed(seed)
    std = images.flatten(1).std(dim=1)[:, None, None]
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return images + noise_std_ratio * std * noise


def angle_error(fitted: torch.Tensor, true: np.ndarray) -> np.ndarray:
    """Absolute orientation difference in degrees, modulo 180."""
    difference = (fitted.numpy() - true) % 180.0
    return np.minimum(difference, 180.0 - difference)


# "10 % noise" read both ways: noise std at 10 % of the atom's std (1 % of its energy), and noise
# energy at 10 % of the atom's energy (std ratio sqrt(0.1)).
@pytest.mark.parametrize("noise_std_ratio", [0.1, math.sqrt(0.1)])
def test_noisy_synthetic_gabors_are_recovered(noise_std_ratio: float) -> None:
    params = random_params(200, seed=0)
    atoms = with_noise(gabor_image(params, SHAPE), noise_std_ratio, seed=1)
    fit = fit_gabors(atoms)
    assert (fit.r2 >= 0.8).double().mean() >= 0.95
    error = angle_error(fit.orientation, params["orientation"])
    assert (error <= 10.0).mean() >= 0.95, np.sort(error)[-10:]
    relative = np.abs(fit.frequency.numpy() / params["frequency"] - 1)
    assert np.median(relative) < 0.05


def test_white_noise_is_not_gabor_like() -> None:
    atoms = torch.randn(200, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    fit = fit_gabors(atoms)
    assert (fit.r2 >= 0.8).double().mean() <= 0.05
    assert gabor_summary(fit)["fraction_gabor"] <= 0.05


def test_noiseless_gabors_round_trip_to_canonical_parameters() -> None:
    params = random_params(24, seed=3)
    fit = fit_gabors(gabor_image(params, SHAPE))
    assert fit.r2.min() > 0.9999
    assert angle_error(fit.orientation, params["orientation"]).max() < 0.5
    # Same canonical form both ways, so every parameter comes back, phase included (mod 2 pi).
    phase_error = (fit.params.phase.numpy() - params["phase"] + math.pi) % (2 * math.pi) - math.pi
    assert np.abs(phase_error).max() < 0.05
    for name in ["x0", "y0", "frequency", "sigma_x", "sigma_y", "amplitude"]:
        np.testing.assert_allclose(getattr(fit.params, name).numpy(), params[name], rtol=0.02, atol=0.02)


def test_fitted_parameters_are_canonical() -> None:
    atoms = with_noise(gabor_image(random_params(50, seed=4), SHAPE), 0.1, seed=5)
    fit = fit_gabors(atoms)
    assert ((fit.orientation >= 0) & (fit.orientation < 180)).all()
    assert ((fit.params.phase >= -math.pi) & (fit.params.phase < math.pi)).all()
    assert (fit.params.amplitude > 0).all() and (fit.frequency >= 0).all()
    torch.testing.assert_close(fit.aspect, fit.params.sigma_y / fit.params.sigma_x)
    torch.testing.assert_close(fit.envelope_size, (fit.params.sigma_x * fit.params.sigma_y).sqrt())
    torch.testing.assert_close(fit.fitted, gabor_image(fit.params, SHAPE))


def test_half_turn_with_negated_phase_is_the_same_gabor() -> None:
    base = {key: value[:5] for key, value in random_params(5, seed=6).items()}
    turned = {**base, "orientation": base["orientation"] + 180.0, "phase": -base["phase"]}
    torch.testing.assert_close(gabor_image(base, SHAPE), gabor_image(turned, SHAPE))


def test_orientation_is_the_wave_vector_direction() -> None:
    # Orientation 0: the carrier varies along x (columns), so the stripes are vertical.
    params = {"x0": 7.5, "y0": 7.5, "orientation": 0.0, "frequency": 0.25, "phase": 0.0}
    image = gabor_image({**params, "sigma_x": 3.0, "sigma_y": 3.0, "amplitude": 1.0}, SHAPE)[0]
    sign_changes = lambda line: int((line[1:] * line[:-1] < 0).sum())  # noqa: E731
    assert sign_changes(image[7, :]) >= 4 and sign_changes(image[:, 7]) == 0


def test_fit_is_deterministic_and_accepts_flat_numpy_atoms() -> None:
    atoms = with_noise(gabor_image(random_params(40, seed=7), SHAPE), 0.1, seed=8)
    first, second = fit_gabors(atoms), fit_gabors(atoms)
    assert torch.equal(first.r2, second.r2)
    flat = fit_gabors(atoms.reshape(40, -1).numpy(), shape=SHAPE)
    torch.testing.assert_close(flat.r2, first.r2)


def test_flat_atoms_get_zero_r2() -> None:
    atoms = torch.zeros(2, *SHAPE)
    atoms[1] = 3.0
    fit = fit_gabors(atoms)
    assert torch.equal(fit.r2, torch.zeros(2, dtype=torch.float64))
    assert torch.isfinite(fit.fitted).all()


def test_summary_is_json_serialisable() -> None:
    good = with_noise(gabor_image(random_params(30, seed=9), SHAPE), 0.1, seed=10)
    noise = torch.randn(10, *SHAPE, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    summary = json.loads(json.dumps(gabor_summary(fit_gabors(torch.cat([good, noise])))))
    assert summary["n"] == 40 and summary["threshold"] == 0.8
    assert summary["n_gabor"] == 30 and summary["fraction_gabor"] == pytest.approx(0.75)
    for name in ["orientation", "frequency", "envelope_size", "aspect"]:
        stats = summary[name]
        assert stats["q25"] <= stats["median"] <= stats["q75"]
        assert sum(stats["histogram"]["counts"]) == 30


def test_summary_without_good_fits_has_no_statistics() -> None:
    noise = torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    summary = gabor_summary(fit_gabors(noise), threshold=0.99)
    assert summary["n_gabor"] == 0 and summary["orientation"]["median"] is None
    json.dumps(summary)


def test_analytic_jacobian_matches_autograd() -> None:
    from poisson_vae.gabor import _evaluate, _grid

    xs, ys = _grid((6, 7), torch.device("cpu"))
    natural = torch.tensor([[2.5, 3.1, 0.2, 1.7, 2.3, 0.7, 0.8, -0.4]], dtype=torch.float64)
    _, analytic = _evaluate(natural, xs, ys, jacobian=True)
    numeric = torch.autograd.functional.jacobian(lambda p: _evaluate(p, xs, ys)[0], natural)
    torch.testing.assert_close(analytic[0], numeric[0, :, 0])


@pytest.mark.parametrize(
    ("atoms", "shape", "message"),
    [
        (torch.full((2, 16, 16), float("nan")), None, "NaN"),
        (torch.zeros(2, 256), None, "shape="),
        (torch.zeros(2, 256), (15, 15), "shape="),
        (torch.zeros(2, 16, 16), (8, 32), "do not match"),
        (torch.zeros(16, 16, 1, 1), None, r"\(K, H, W\)"),
        (torch.zeros(0, 16, 16), None, "at least one atom"),
        (torch.zeros(2, 16, 16, dtype=torch.complex64), None, "real"),
    ],
)
def test_bad_input_raises_a_clear_error(
    atoms: torch.Tensor, shape: tuple[int, int] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_gabors(atoms, shape=shape)


@pytest.mark.parametrize(("n_iterations", "n_threads"), [(-1, 1), (10, 0)])
def test_bad_options_raise(n_iterations: int, n_threads: int) -> None:
    with pytest.raises(ValueError, match="n_iterations"):
        fit_gabors(torch.zeros(1, *SHAPE), n_iterations=n_iterations, n_threads=n_threads)


def test_thread_setting_is_restored() -> None:
    threads = torch.get_num_threads()
    atoms = with_noise(gabor_image(random_params(4, seed=13), SHAPE), 0.1, seed=14)
    one, default = fit_gabors(atoms), fit_gabors(atoms, n_threads=None)
    assert torch.get_num_threads() == threads
    torch.testing.assert_close(one.r2, default.r2)


def test_missing_parameters_raise() -> None:
    with pytest.raises(ValueError, match="missing"):
        gabor_image({"x0": 1.0}, SHAPE)
    assert isinstance(GaborParams.from_mapping(random_params(3, seed=0)), GaborParams)
