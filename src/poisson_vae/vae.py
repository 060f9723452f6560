"""One VAE: encoder -> latent family -> sample -> decoder, and its loss (docs/model.md).

The loss per sample is ``SSE(x, x_hat) + beta * sum_k KL_k``, averaged over the batch, with three ways
to take the expectation over the posterior:

- ``mc``: a reparameterised (relaxed) sample;
- ``exact``: the closed form ``||x - Phi m||^2 + sum_k v_k ||phi_k||^2`` for a linear decoder;
- ``straight-through``: the hard count forward, the relaxed gradient backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributions import Distribution

from .config import ESTIMATOR_METHODS, METHODS, ModelConfig
from .errors import CheckpointError, ConfigError
from .files import read_json, write_atomic, write_json
from .gradients import SquaredError, make_estimator
from .iterative import IterativeVAE
from .latents import LATENT_FAMILIES, LatentCode
from .nets import LinearDecoder, build_networks, parse_architecture
from .runs import Run

__all__ = [
    "VAE",
    "CheckpointError",
    "LossTerms",
    "build_vae",
    "load_model",
    "save_model",
    "training_bytes",
]


@dataclass
class LossTerms:
    """Per-sample terms of one forward pass, each (B,), plus what evaluation reads.

    Attributes:
        sse: squared error of the reconstruction (expected, for ``exact``).
        kl: KL summed over latents.
        code: the posteriors.
        z: (B, K) the sample decoded (None for ``exact``).
        reconstruction: (B, C, H, W) the decoded sample (posterior mean for ``exact``).
    """

    sse: torch.Tensor
    kl: torch.Tensor
    code: LatentCode
    z: torch.Tensor | None
    reconstruction: torch.Tensor

    def loss(self, beta: float) -> torch.Tensor:
        """Scalar: mean over the batch of SSE + beta KL."""
        return (self.sse + beta * self.kl).mean()


def _at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """float16 and bfloat16 as float32; float32 and float64 as they are."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class VAE(nn.Module):
    """A variational autoencoder with a pluggable latent family and networks.

    Args:
        encoder: (B, C, H, W) -> (B, params_per_latent * K).
        latent: a latent family module (see :mod:`poisson_vae.latents`).
        decoder: (B, K) -> (B, C, H, W).
        config: the configuration it was built from (saved with the weights).
    """

    def __init__(self, encoder: nn.Module, latent: nn.Module, decoder: nn.Module, config: ModelConfig):
        super().__init__()
        self.encoder = encoder
        self.latent = latent
        self.decoder = decoder
        self.config = config

    @property
    def final_temperature(self) -> float:
        """The sampler temperature training ends at (the latent family's)."""
        return self.latent.final_temperature

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.config.input_shape
        if x.dim() == 2 and x.shape[1] == math.prod(expected):
            x = x.view(-1, *expected)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected inputs of shape (batch, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)}"
            )
        return x

    def encode(self, x: torch.Tensor) -> LatentCode:
        """Posteriors of a batch (B, C, H, W) or (B, C*H*W)."""
        return self._posterior(self.encoder(self._check_input(x)))

    def _posterior(self, encoder_output: torch.Tensor) -> LatentCode:
        # The latent family (its exponentials, KL and sampler) runs in float32 even under mixed
        # precision: bfloat16 keeps 8 bits of mantissa, too few for a rate's exp or a tail draw.
        with torch.autocast(encoder_output.device.type, enabled=False):
            return self.latent(_at_least_float32(encoder_output))

    def _sample(self, code: LatentCode, temperature: float, hard: bool, generator) -> torch.Tensor:
        with torch.autocast(code.mean.device.type, enabled=False):
            return self.latent.rsample(code, temperature, hard, generator)

    def _squared_error(self, flat: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The reconstruction error of counts (..., B, K) against the flat inputs (B, D), per row:
        a :class:`~poisson_vae.gradients.SquaredError` (closed forms) for a linear decoder without
        bias, the decoder run on the flattened leading dimensions otherwise."""
        if isinstance(self.decoder, LinearDecoder) and self.decoder.linear.bias is None:
            return SquaredError(flat, self.decoder.dictionary)

        def error(z: torch.Tensor) -> torch.Tensor:
            decoded = self.decoder(z.reshape(-1, z.shape[-1])).flatten(1).float()
            return (flat - decoded.view(*z.shape[:-1], -1)).pow(2).sum(-1)

        return error

    def _temperature(self, temperature: float | None) -> float:
        """The temperature given, or by default the family's final one in training mode (a
        relaxed sample that carries gradient) and 0 in eval mode (exact, hard samples)."""
        if temperature is not None:
            return temperature
        return self.latent.final_temperature if self.training else 0.0

    def posterior(self, x: torch.Tensor, temperature: float | None = None) -> Distribution:
        """The posteriors of a batch (B, C, H, W) as a ``torch.distributions.Distribution``:
        ``RelaxedPoisson`` (P-VAE), ``Normal`` (G-VAE; before its relu or exp), ``Laplace``,
        or a relaxed one-hot categorical (C-VAE), batch shape (B, K) (the C-VAE: (B,) with
        event shape (K,)). ``rsample``, ``mean`` and ``kl_divergence(q, model.prior())`` work
        as on any torch distribution.

        Args:
            x: (B, C, H, W) or (B, C*H*W) inputs.
            temperature: of the relaxed samples (default: see :meth:`forward`).
        """
        return self.latent.distribution(self.encode(x), self._temperature(temperature))

    def prior(self, temperature: float | None = None) -> Distribution:
        """The prior as a ``torch.distributions.Distribution`` (batch shape (K,))."""
        return self.latent.prior(self._temperature(temperature))

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the weights (safetensors) and configuration into ``directory``; the same files as
        a finished ``pvae train`` run, loadable by :meth:`from_pretrained` and the CLI."""
        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> VAE:
        """The model saved in ``directory`` (by :meth:`save_pretrained` or ``pvae train``), on
        ``map_location``, in eval mode."""
        return load_model(directory, map_location)

    def push_to_hub(self, repo_id: str, **options) -> str:
        """Upload the model to the Hugging Face Hub (the ``hub`` extra; see
        :func:`poisson_vae.hub.push_to_hub`)."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **options)

    @classmethod
    def from_hub(cls, repo_id: str, **options) -> VAE:
        """A model from the Hugging Face Hub or a local folder (the ``hub`` extra; see
        :func:`poisson_vae.hub.from_hub`)."""
        from .hub import from_hub

        return from_hub(repo_id, **options)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, C, H, W)."""
        return self.decoder(z)

    def decode_point(self, code: LatentCode) -> torch.Tensor:
        """(B, C, H, W): the decoded deterministic code (the posterior mean; used for mse_map)."""
        return self.decoder(self.latent.point(code))

    def forward(
        self,
        x: torch.Tensor,
        temperature: float | None = None,
        method: str | None = None,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        """Encode, sample, decode and score a batch.

        Args:
            x: (B, C, H, W) inputs.
            temperature: relaxation temperature of the sample (0: hard sample, no gradient to
                the encoder through it). Default: in training mode the family's final
                temperature (P-VAE 0.05, C-VAE 0.1), so that a plain loop
                ``model(x).loss(1.0).backward()`` trains the encoder; in eval mode 0. The
                paper's recipe anneals it from 1 (``pvae train`` does).
            method: ``mc``, ``exact`` or ``straight-through``; the config's method if None.
            generator: optional random generator for the sample.
        """
        x = self._check_input(x)
        temperature = self._temperature(temperature)
        method = method or self.config.method
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        code = self._posterior(self.encoder(x))
        kl = code.kl.sum(1)
        if method == "exact":
            if not isinstance(self.decoder, LinearDecoder) or self.decoder.linear.bias is not None:
                raise ValueError("method 'exact' needs a linear decoder without bias")
            with torch.autocast(x.device.type, enabled=False):
                flat = _at_least_float32(x.flatten(1))
                sse = self.latent.expected_sse(flat, self.decoder.dictionary, code)
            reconstruction = self.decoder(self.latent.point(code))
            return LossTerms(sse=sse, kl=kl, code=code, z=None, reconstruction=reconstruction)
        if method in ESTIMATOR_METHODS and temperature > 0:  # at 0: one exact draw, as mc
            with torch.autocast(x.device.type, enabled=False):
                error = self._squared_error(_at_least_float32(x.flatten(1)))
                estimator = make_estimator(method)
                sse, z = estimator.loss(code.mean.float(), error, temperature, generator)
            return LossTerms(sse=sse, kl=kl, code=code, z=z, reconstruction=self.decoder(z))
        z = self._sample(code, temperature, method == "straight-through", generator)
        reconstruction = self.decoder(z)
        sse = (x - _at_least_float32(reconstruction)).pow(2).flatten(1).sum(1)
        return LossTerms(sse=sse, kl=kl, code=code, z=z, reconstruction=reconstruction)


def build_vae(config: ModelConfig) -> VAE | IterativeVAE:
    """Build a freshly initialised VAE from its configuration.

    The map into the latents (and a linear decoder) starts as N(0, 0.05^2) with a linear decoder and
    N(0, 0.1^2) otherwise (the paper's recipe), scaled by the family's ``init_std_scale``, or
    N(0, init_std^2) when given, with zero biases; every other layer keeps PyTorch's default, as
    the release did. With ``inference="iterative"``: an :class:`~poisson_vae.iterative.IterativeVAE`
    (its dictionary N(0, 1e-4^2) unless ``init_std`` is given).
    """
    config = ModelConfig(**asdict(config))  # checked again: a config may have been edited
    if config.inference == "iterative":
        return IterativeVAE(
            config.latent,
            math.prod(config.input_shape),
            config.n_latents,
            init_std=1e-4 if config.init_std is None else config.init_std,
            kl_prefactor=config.kl_prefactor,
            config=config,
        )
    arch = parse_architecture(config.arch)
    family = LATENT_FAMILIES[config.latent]
    n_outputs = config.n_latents * family.params_per_latent
    encoder, decoder = build_networks(
        arch, config.input_shape, n_outputs, config.n_latents, layer_norm=config.layer_norm
    )
    linear_decoder = arch.decoder == "lin"
    options = {name: getattr(config, name) for name in family.model_options}
    latent = family.from_config(config.n_latents, options, linear_decoder)
    std = config.init_std
    if std is None:
        std = (0.05 if linear_decoder else 0.1) * family.init_std_scale
    # The release's initialisation: the map into the latents (and a linear decoder's dictionary)
    # drawn from N(0, std^2) with a zero bias; every other layer keeps PyTorch's default, which
    # keeps a non-linear decoder's first reconstructions near the data's scale.
    for module in (encoder.linear, *([decoder.linear] if linear_decoder else [])):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return VAE(encoder, latent, decoder, config)


def training_bytes(config: ModelConfig, batch_size: int) -> int:
    """A rough estimate of the memory one training step takes: the parameters with their
    gradients and two optimiser states, and the activations of a batch forward and backward."""
    with torch.device("meta"):  # counts without allocating
        model = build_vae(config)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    family = LATENT_FAMILIES[config.latent]
    per_sample = math.prod(config.input_shape) * 4 + config.n_latents * (family.params_per_latent + 4)
    if config.inference == "iterative":  # every unrolled step keeps its activations
        per_sample *= 2 * config.n_steps
    return 4 * (4 * parameters + 4 * batch_size * per_sample)


def save_model(model: VAE | IterativeVAE, directory: str | Path) -> None:
    """Write the weights (safetensors) and the ``model`` section of ``config.json`` into
    ``directory``, each atomically; other sections of an existing ``config.json`` are kept."""
    run = Run(directory)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    write_atomic(
        run.directory / Run.WEIGHTS["vae"],
        lambda temporary: save_file(state, temporary, metadata={"format": "poisson-vae"}),
    )
    document = read_json(run.config_path, CheckpointError) if run.config_path.is_file() else {}
    document["model"] = asdict(model.config)
    write_json(run.config_path, document)


def _device(map_location: str | torch.device) -> torch.device:
    """``map_location`` as a device that exists here; a one-line error otherwise."""
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as error:
        raise CheckpointError(f"map_location {map_location!r} is not a device ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(
            f"map_location {map_location!r}: no CUDA device is visible to torch {torch.__version__}; "
            "load on the CPU (map_location='cpu')"
        )
    return device


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> VAE | IterativeVAE:
    """Load a model written by :func:`save_model` (or by ``pvae train``) from ``directory``.

    Args:
        directory: the folder (a finished run of ``pvae train``, or one :func:`save_model` wrote).
        map_location: the device the returned model lives on.

    Returns:
        The model on ``map_location``, in eval mode.
    """
    run = Run(directory)
    device = _device(map_location)
    try:
        weights_path = run.require_weights("vae")
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    document = read_json(run.config_path, CheckpointError)
    if not isinstance(document, dict) or "model" not in document:
        raise CheckpointError(f"{run.config_path} has no 'model' section; re-create the run")
    try:
        config = ModelConfig.from_dict(document["model"])
    except ConfigError as error:
        raise CheckpointError(f"{run.config_path}: {error}") from None
    model = build_vae(config)
    try:
        model.load_state_dict(load_file(weights_path, device="cpu"))
    except (SafetensorError, RuntimeError, OSError) as error:
        message = str(error).splitlines()[0]
        raise CheckpointError(
            f"{weights_path} is corrupt or does not match {run.config_path} ({message})"
        ) from None
    return model.to(device).eval()
