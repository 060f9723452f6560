"""Encoders and decoders, named by the ``enc|dec`` architecture strings of SPEC 1.3.

This version provides the linear (``lin``) and fully connected (``mlp``) networks, each with
``+b`` for a bias on its linear map; ``conv`` plugs into the same registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Architecture",
    "LinearDecoder",
    "LinearEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "ResidualDenseBlock",
    "build_networks",
    "parse_architecture",
]

ENCODERS = ("lin", "mlp")
DECODERS = ("lin", "mlp")


@dataclass(frozen=True)
class Architecture:
    """A parsed ``enc|dec`` string such as ``lin|lin`` or ``lin+b|lin``."""

    encoder: str
    encoder_bias: bool
    decoder: str
    decoder_bias: bool

    def __str__(self) -> str:
        enc = self.encoder + ("+b" if self.encoder_bias else "")
        dec = self.decoder + ("+b" if self.decoder_bias else "")
        return f"{enc}|{dec}"


def parse_architecture(text: str) -> Architecture:
    """Parse ``'enc|dec'`` (each side optionally ``+b``) into an :class:`Architecture`."""
    sides = text.strip().split("|")
    if len(sides) != 2:
        raise ValueError(f"--arch {text!r} is malformed: write 'encoder|decoder', e.g. 'lin|lin'")
    parsed = []
    for side, known in zip(sides, (ENCODERS, DECODERS)):
        name, _, suffix = side.strip().partition("+")
        if suffix not in ("", "b"):
            raise ValueError(f"--arch {text!r}: only '+b' may follow a network name, got '+{suffix}'")
        if name not in known:
            raise ValueError(
                f"--arch {text!r}: unknown network {name!r}; this version provides {', '.join(known)}"
            )
        parsed += [name, suffix == "b"]
    return Architecture(*parsed)


class LinearEncoder(nn.Module):
    """Flatten the input and map it linearly to the latent parameters.

    Args:
        input_shape: (C, H, W) of one sample.
        n_outputs: encoder outputs (latents x parameters per latent).
        bias: add a bias.
    """

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, bias: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), n_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, n_outputs)."""
        return self.linear(x.flatten(1))


class LinearDecoder(nn.Module):
    """x_hat = Phi z: a dictionary of K atoms, one column of ``Phi`` (D x K) each.

    Args:
        n_latents: K.
        output_shape: (C, H, W) of one sample.
        bias: add a bias.
    """

    def __init__(self, n_latents: int, output_shape: tuple[int, ...], bias: bool = False) -> None:
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.linear = nn.Linear(n_latents, math.prod(output_shape), bias=bias)

    @property
    def dictionary(self) -> torch.Tensor:
        """(D, K) the atoms as columns."""
        return self.linear.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, C, H, W)."""
        return self.linear(z).view(-1, *self.output_shape)


class ResidualDenseBlock(nn.Module):
    """LayerNorm(x + W2 dropout(relu(W1 x + c1)) + c2), W1: d -> e d (SPEC 1.3).

    Args:
        width: d.
        expansion: e.
        dropout: dropout probability inside the block.
    """

    def __init__(self, width: int, expansion: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.expand = nn.Linear(width, expansion * width)
        self.contract = nn.Linear(expansion * width, width)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (B, d)."""
        return self.norm(x + self.contract(self.dropout(torch.relu(self.expand(x)))))


class MLPEncoder(nn.Module):
    """A residual dense block (expansion 16) on the flattened input, then the final linear map.

    Args:
        input_shape: (C, H, W) of one sample.
        n_outputs: encoder outputs (latents x parameters per latent).
        bias: add a bias to the final linear map.
    """

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, bias: bool = False) -> None:
        super().__init__()
        width = math.prod(input_shape)
        self.block = ResidualDenseBlock(width, expansion=16)
        self.linear = nn.Linear(width, n_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, n_outputs)."""
        return self.linear(self.block(x.flatten(1)))


class MLPDecoder(nn.Module):
    """Linear K -> D, SiLU, a residual dense block (expansion 8), SiLU, linear D -> D with bias.

    Args:
        n_latents: K.
        output_shape: (C, H, W) of one sample.
        bias: add a bias to the first linear map.
    """

    def __init__(self, n_latents: int, output_shape: tuple[int, ...], bias: bool = False) -> None:
        super().__init__()
        self.output_shape = tuple(output_shape)
        width = math.prod(output_shape)
        self.linear = nn.Linear(n_latents, width, bias=bias)
        self.block = ResidualDenseBlock(width, expansion=8)
        self.output = nn.Linear(width, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, C, H, W)."""
        hidden = self.block(F.silu(self.linear(z)))
        return self.output(F.silu(hidden)).view(-1, *self.output_shape)


def build_networks(
    arch: Architecture, input_shape: tuple[int, ...], n_outputs: int, n_latents: int
) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder an architecture names."""
    encoders = {"lin": LinearEncoder, "mlp": MLPEncoder}
    decoders = {"lin": LinearDecoder, "mlp": MLPDecoder}
    encoder = encoders[arch.encoder](input_shape, n_outputs, bias=arch.encoder_bias)
    decoder = decoders[arch.decoder](n_latents, input_shape, bias=arch.decoder_bias)
    return encoder, decoder
