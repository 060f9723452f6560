"""One VAE: encoder -> latent family -> sample -> decoder, and its loss (SPEC 1).

The loss per sample is ``SSE(x, x_hat) + beta * sum_k KL_k``, averaged over the batch, with three ways
to take the expectation over the posterior:

- ``mc``: a reparameterised (relaxed) sample;
- ``exact``: the closed form ``||x - Phi m||^2 + sum_k v_k ||phi_k||^2`` for a linear decoder;
- ``straight-through``: the hard count forward, the relaxed gradient backward.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .distributions import INDICATORS
from .latents import LATENT_FAMILIES, LatentCode, build_latent
from .nets import LinearDecoder, build_networks, parse_architecture
from .options import option

__all__ = [
    "METHODS",
    "VAE",
    "CheckpointError",
    "LossTerms",
    "ModelConfig",
    "build_vae",
    "load_model",
    "save_model",
]

METHODS = ("mc", "exact", "straight-through")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(RuntimeError):
    """A run directory's weights or configuration are missing or unreadable."""


@dataclass
class ModelConfig:
    """What to build: latent family, networks, size and training method."""

    latent: str = option(
        "poisson", "latent family: poisson, gaussian, gaussian-relu, gaussian-exp, laplace, categorical"
    )
    arch: str = option("lin|lin", "networks as 'encoder|decoder', e.g. 'lin|lin'")
    n_latents: int = option(512, "number of latents K")
    input_shape: tuple[int, int, int] = option(
        (1, 16, 16), "shape of one sample (set from the data)", cli=False
    )
    method: str = option("mc", "expectation of the loss: " + " | ".join(METHODS))
    indicator: str = option("sigmoid", "soft indicator of the relaxed sampler")
    excitatory_only: bool = option(False, "restrict rate changes to dr >= 1")
    init_std: float | None = option(
        None,
        "std of the initial weights (default: 0.05 with a linear decoder, else 0.1; "
        "gaussian-exp: a fifth of that)",
    )

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)  # type: ignore[assignment]
        if self.latent not in LATENT_FAMILIES:
            raise ValueError(
                f"--latent {self.latent!r} is unknown; choose one of {sorted(LATENT_FAMILIES)}"
            )
        parse_architecture(self.arch)
        if self.n_latents < 1:
            raise ValueError(f"--n-latents must be a positive integer, got {self.n_latents}")
        if self.method not in METHODS:
            raise ValueError(f"--method {self.method!r} is unknown; choose one of {', '.join(METHODS)}")
        with torch.random.fork_rng(devices=[]):  # validating a config must not consume RNG draws
            family = build_latent(self.latent, 1)
        if self.method == "exact" and not family.supports_exact:
            raise ValueError(
                f"--method exact needs closed-form posterior moments, which --latent {self.latent} "
                "lacks; use --method mc"
            )
        if self.method == "exact" and parse_architecture(self.arch).decoder != "lin":
            raise ValueError("--method exact needs a linear decoder (--arch '...|lin')")
        if self.method == "straight-through" and not family.supports_straight_through:
            raise ValueError(
                f"--method straight-through needs a hard sample; --latent {self.latent} has none "
                "(poisson and categorical do)"
            )
        if self.excitatory_only and self.latent != "poisson":
            raise ValueError("--excitatory-only applies to --latent poisson only")
        if self.indicator not in INDICATORS:
            raise ValueError(
                f"--indicator {self.indicator!r} is unknown; choose one of {sorted(INDICATORS)}"
            )
        if self.init_std is not None and not (math.isfinite(self.init_std) and self.init_std > 0):
            raise ValueError(f"--init-std must be a positive number, got {self.init_std}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (channels, height, width), got {self.input_shape}")

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


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
        return self.latent(self.encoder(self._check_input(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, C, H, W)."""
        return self.decoder(z)

    def decode_point(self, code: LatentCode) -> torch.Tensor:
        """(B, C, H, W): the decoded deterministic code (the posterior mean; used for mse_map)."""
        return self.decoder(self.latent.point(code))

    def forward(
        self,
        x: torch.Tensor,
        temperature: float = 0.0,
        method: str | None = None,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        """Encode, sample, decode and score a batch.

        Args:
            x: (B, C, H, W) inputs.
            temperature: relaxation temperature of the sample (0: hard sample).
            method: ``mc``, ``exact`` or ``straight-through``; the config's method if None.
            generator: optional random generator for the sample.
        """
        x = self._check_input(x)
        method = method or self.config.method
        code = self.latent(self.encoder(x))
        kl = code.kl.sum(1)
        if method == "exact":
            if not isinstance(self.decoder, LinearDecoder) or self.decoder.linear.bias is not None:
                raise ValueError("method 'exact' needs a linear decoder without bias")
            sse = self.latent.expected_sse(x.flatten(1), self.decoder.dictionary, code)
            reconstruction = self.decoder(self.latent.point(code))
            return LossTerms(sse=sse, kl=kl, code=code, z=None, reconstruction=reconstruction)
        z = self.latent.rsample(code, temperature, method == "straight-through", generator)
        reconstruction = self.decoder(z)
        sse = (x - reconstruction).pow(2).flatten(1).sum(1)
        return LossTerms(sse=sse, kl=kl, code=code, z=z, reconstruction=reconstruction)


def build_vae(config: ModelConfig) -> VAE:
    """Build a freshly initialised VAE from its configuration (SPEC 1 and 2)."""
    arch = parse_architecture(config.arch)
    n_outputs = config.n_latents * LATENT_FAMILIES[config.latent][0].params_per_latent
    encoder, decoder = build_networks(arch, config.input_shape, n_outputs, config.n_latents)
    linear_decoder = arch.decoder == "lin"
    options = {}
    if config.latent == "poisson":
        options = {
            "prior_log_rate_range": (-6.0, -4.0) if linear_decoder else (-6.0, -2.0),
            "excitatory_only": config.excitatory_only,
            "indicator": config.indicator,
        }
    latent = build_latent(config.latent, config.n_latents, **options)
    # SPEC 2: N(0, 0.05^2) weights with a linear decoder, N(0, 0.1^2) otherwise; zero biases.
    std = config.init_std if config.init_std is not None else (0.05 if linear_decoder else 0.1)
    if config.init_std is None and config.latent == "gaussian-exp":
        # exp of the initial samples must stay near 1: at 0.05, whitened patches give posterior
        # standard deviations up to ~e^3 and exp(z) in the thousands, which training does not
        # recover from quickly (NELBO 3.6e5 after 15 epochs on natural16; 165 from 0.01).
        std /= 5
    for module in (*encoder.modules(), *decoder.modules()):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return VAE(encoder, latent, decoder, config)


def save_model(model: VAE, directory: str | Path) -> None:
    """Write ``model.safetensors`` and ``config.json`` (key ``model``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    temporary = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, temporary, metadata={"format": "poisson-vae"})
    temporary.replace(directory / WEIGHTS_FILE)
    config_path = directory / CONFIG_FILE
    document = json.loads(config_path.read_text()) if config_path.exists() else {}
    document["model"] = asdict(model.config)
    config_path.write_text(json.dumps(document, indent=2) + "\n")


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> VAE:
    """Load a model written by :func:`save_model` (or by ``pvae train``) from ``directory``."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(
                f"{path} is missing: point at a directory written by `pvae train` (a finished run)"
            )
    try:
        config = ModelConfig.from_dict(json.loads(config_path.read_text())["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path} is unreadable ({error}); re-create the run") from None
    model = build_vae(config)
    try:
        state = load_file(weights_path, device=str(map_location))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as error:
        message = str(error).splitlines()[0]
        raise CheckpointError(
            f"{weights_path} is corrupt or does not match config ({message})"
        ) from None
    return model.eval()
