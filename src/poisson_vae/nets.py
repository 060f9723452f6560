"""Encoders and decoders, named by the ``enc|dec`` architecture strings of SPEC 1.3.

This version provides the linear networks (``lin``, with ``+b`` for a bias); ``mlp`` and ``conv``
plug into the same registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Architecture", "LinearDecoder", "LinearEncoder", "parse_architecture"]

ENCODERS = ("lin",)
DECODERS = ("lin",)


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
