"""Encoders and decoders, named by the ``enc|dec`` architecture strings (docs/model.md).

Three kinds, each with ``+b`` for a bias on its linear map: ``lin`` (one linear map), ``mlp`` (a
residual dense block) and ``conv`` (weight-normalised convolutions with squeeze-excite, after the
paper's NVAE-style cells; defined for 16x16 and 28x28 inputs). Layer for layer they reproduce the
paper's trainable parameter counts, which ``tests/test_nets.py`` checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, braces

__all__ = [
    "BLOCK_NETWORKS",
    "Architecture",
    "ConvDecoder",
    "ConvEncoder",
    "LinearDecoder",
    "LinearEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "ResidualDenseBlock",
    "build_networks",
    "parse_architecture",
]

ENCODERS = ("lin", "mlp", "conv")
DECODERS = ("lin", "mlp", "conv")
#: The networks that hold a residual dense block, as (encoders, decoders).
BLOCK_NETWORKS = (("mlp", "conv"), ("mlp",))


@dataclass(frozen=True)
class Architecture:
    """A parsed ``enc|dec`` string such as ``lin|lin``, ``lin+b|lin`` or ``mlp2+b|mlp2+b``.

    ``mlpE`` is the ``mlp`` network with expansion E in its residual dense block (``mlp`` alone:
    the paper's 16 in the encoder, 8 in the decoder); ``+b`` adds a bias.
    """

    encoder: str
    encoder_bias: bool
    decoder: str
    decoder_bias: bool
    encoder_expansion: int | None = None
    decoder_expansion: int | None = None

    def __str__(self) -> str:
        sides = []
        for name, expansion, bias in (
            (self.encoder, self.encoder_expansion, self.encoder_bias),
            (self.decoder, self.decoder_expansion, self.decoder_bias),
        ):
            sides.append(name + (str(expansion) if expansion else "") + ("+b" if bias else ""))
        return "|".join(sides)


def parse_architecture(text: str) -> Architecture:
    """Parse ``'enc|dec'`` (each side a network name, an expansion after ``mlp``, optionally
    ``+b``) into an :class:`Architecture`."""
    sides = text.strip().split("|")
    if len(sides) != 2:
        raise ConfigError(
            f"{{0}} {braces(repr(text))} is malformed: write 'encoder|decoder', e.g. 'lin|lin'", "arch"
        )
    parsed = {}
    for role, side, known in zip(("encoder", "decoder"), sides, (ENCODERS, DECODERS)):
        network, _, suffix = side.strip().partition("+")
        if suffix not in ("", "b"):
            raise ConfigError(
                f"{{0}} {braces(repr(text))}: only '+b' may follow a network name, "
                f"got {braces(repr('+' + suffix))}",
                "arch",
            )
        name = network.rstrip("0123456789")
        digits = network[len(name) :]
        if name not in known or (digits and name != "mlp"):
            raise ConfigError(
                f"{{0}} {braces(repr(text))}: unknown network {braces(repr(network))}; this version "
                f"provides {', '.join(known)} (and mlpE, an mlp of expansion E)",
                "arch",
            )
        if digits and int(digits) < 1:
            raise ConfigError(
                f"{{0}} {braces(repr(text))}: an mlp's expansion must be at least 1", "arch"
            )
        parsed |= {role: name, f"{role}_bias": suffix == "b"}
        parsed[f"{role}_expansion"] = int(digits) if digits else None
    return Architecture(**parsed)


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
    """LayerNorm(x + W2 dropout(relu(W1 x + c1)) + c2), W1: d -> e d (the paper's residual dense block).

    Args:
        width: d.
        expansion: e.
        dropout: dropout probability inside the block.
        layer_norm: close the block with its LayerNorm (the paper's); without it the block returns
            x + W2 dropout(relu(W1 x + c1)) + c2.
    """

    def __init__(
        self, width: int, expansion: int, dropout: float = 0.1, layer_norm: bool = True
    ) -> None:
        super().__init__()
        self.expand = nn.Linear(width, expansion * width)
        self.contract = nn.Linear(expansion * width, width)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width) if layer_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (B, d)."""
        return self.norm(x + self.contract(self.dropout(torch.relu(self.expand(x)))))


class MLPEncoder(nn.Module):
    """A residual dense block (expansion 16) on the flattened input, then the final linear map.

    Args:
        input_shape: (C, H, W) of one sample.
        n_outputs: encoder outputs (latents x parameters per latent).
        bias: add a bias to the final linear map.
        expansion: the block's expansion (the paper's: 16).
        layer_norm: the block's closing LayerNorm (the paper's).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_outputs: int,
        bias: bool = False,
        expansion: int = 16,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        width = math.prod(input_shape)
        self.block = ResidualDenseBlock(width, expansion=expansion, layer_norm=layer_norm)
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
        expansion: the block's expansion (the paper's: 8).
        layer_norm: the block's closing LayerNorm (the paper's).
    """

    def __init__(
        self,
        n_latents: int,
        output_shape: tuple[int, ...],
        bias: bool = False,
        expansion: int = 8,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        self.output_shape = tuple(output_shape)
        width = math.prod(output_shape)
        self.linear = nn.Linear(n_latents, width, bias=bias)
        self.block = ResidualDenseBlock(width, expansion=expansion, layer_norm=layer_norm)
        self.output = nn.Linear(width, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, C, H, W)."""
        hidden = self.block(F.silu(self.linear(z)))
        return self.output(F.silu(hidden)).view(-1, *self.output_shape)


class WeightNormConv2d(nn.Conv2d):
    """A convolution with weight w = exp(g) W / ||W|| (norm over all but the output axis) and a bias.

    The per-output-channel log-gain ``g`` starts at log ||W||, so the initial weight is W.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=True, **kwargs)
        self.log_gain = nn.Parameter(self.weight.detach().flatten(1).norm(dim=1).log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W')."""
        norm = self.weight.flatten(1).norm(dim=1).clamp_min(1e-12)
        weight = self.weight * (self.log_gain.exp() / norm).view(-1, 1, 1, 1)
        return self._conv_forward(x, weight, self.bias)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> WeightNormConv2d:
    return WeightNormConv2d(in_channels, out_channels, 3, stride=stride, padding=1)


class SqueezeExcite(nn.Module):
    """Scale each channel by sigmoid(Linear(ReLU(Linear(global average)))), hidden max(c // 16, 4)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 16, 4)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        scale = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean((2, 3))))))
        return x * scale[:, :, None, None]


class EncoderCell(nn.Module):
    """x + SE(conv3x3(SiLU(conv3x3(SiLU(x))))); a *down* cell halves the size and doubles channels.

    The down cell's skip path is the factorised reduction (four 1x1 stride-2 convolutions on the
    input shifted by nothing, a column, a row and both) for even sizes, else one 1x1 stride-2 conv.
    """

    def __init__(self, channels: int, down: bool = False, factorised_skip: bool = True) -> None:
        super().__init__()
        out_channels = 2 * channels if down else channels
        self.conv1 = _conv3x3(channels, out_channels, stride=2 if down else 1)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.se = SqueezeExcite(out_channels)
        self.skip: nn.ModuleList | None = None
        if down:
            quarter = out_channels // 4
            widths = [quarter] * 3 + [out_channels - 3 * quarter] if factorised_skip else [out_channels]
            self.skip = nn.ModuleList(WeightNormConv2d(channels, width, 1, stride=2) for width in widths)

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip is None:
            return x
        x = F.silu(x)
        if len(self.skip) == 1:
            return self.skip[0](x)
        shifted = [
            x,
            F.pad(x[..., :, 1:], (0, 1)),
            F.pad(x[..., 1:, :], (0, 0, 0, 1)),
            F.pad(x[..., 1:, 1:], (0, 1, 0, 1)),
        ]
        return torch.cat([conv(part) for conv, part in zip(self.skip, shifted)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), or (B, 2C, ceil(H/2), ceil(W/2)) for a down cell."""
        return self._skip(x) + self.se(self.conv2(F.silu(self.conv1(F.silu(x)))))


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W), nearest neighbour."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class DecoderCell(nn.Module):
    """Normal: x + SE(conv3x3(SiLU(x))); up: conv1x1(up2(x)) + SE(conv3x3(up2(SiLU(x)))), c -> c/2."""

    def __init__(self, channels: int, up: bool = False) -> None:
        super().__init__()
        out_channels = channels // 2 if up else channels
        self.up = up
        self.conv = _conv3x3(channels, out_channels)
        self.se = SqueezeExcite(out_channels)
        self.skip = WeightNormConv2d(channels, out_channels, 1) if up else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), or (B, C/2, 2H, 2W) for an up cell."""
        if self.skip is None:
            return x + self.se(self.conv(F.silu(x)))
        return self.skip(_upsample2(x)) + self.se(self.conv(_upsample2(F.silu(x))))


#: Stages of the conv networks per input side: encoder down stages, decoder up stages.
CONV_STAGES = {16: (2, 3), 28: (3, 4)}
CONV_CHANNELS = 32
DECODER_CHANNELS = 256


def _conv_stages(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in CONV_STAGES:
        raise ConfigError(
            f"conv networks are defined for 16x16 and 28x28 inputs, got {tuple(shape[1:])}; "
            "use {0} 'lin|lin' or 'mlp|lin' for other sizes",
            "arch",
        )
    return CONV_STAGES[shape[1]]


class ConvEncoder(nn.Module):
    """Stem, normal cell, down stages, pooling, a residual dense block and the final linear map.

    Args:
        input_shape: (C, H, W) of one sample, H = W in {16, 28}.
        n_outputs: encoder outputs (latents x parameters per latent).
        bias: add a bias to the final linear map.
        layer_norm: the residual dense block's closing LayerNorm (the paper's).
    """

    def __init__(
        self, input_shape: tuple[int, ...], n_outputs: int, bias: bool = False, layer_norm: bool = True
    ) -> None:
        super().__init__()
        n_stages, _ = _conv_stages(input_shape)
        side = input_shape[1]
        # 16x16 keeps its size (padding 1); 28x28 loses a border (26 = 2 x 13, and 13 -> 7 -> 4).
        self.stem = WeightNormConv2d(input_shape[0], CONV_CHANNELS, 3, padding=1 if side == 16 else 0)
        cells: list[nn.Module] = [EncoderCell(CONV_CHANNELS)]
        channels = CONV_CHANNELS
        for _ in range(n_stages):
            cells += [EncoderCell(channels, down=True, factorised_skip=side == 16)]
            channels *= 2
            cells += [EncoderCell(channels)]
        self.cells = nn.Sequential(*cells)
        self.pool = WeightNormConv2d(channels, channels, 4)
        self.block = ResidualDenseBlock(channels, expansion=8, layer_norm=layer_norm)
        self.linear = nn.Linear(channels, n_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, n_outputs)."""
        h = self.cells(self.stem(x))  # (B, c, 4, 4)
        pooled = h.mean((2, 3)) + self.pool(F.silu(h)).flatten(1)
        return self.linear(self.block(pooled))


class ConvDecoder(nn.Module):
    """Linear K -> 256 x 2 x 2, a normal cell, up stages to the input size, a 1x1 conv to the output.

    Args:
        n_latents: K.
        output_shape: (C, H, W) of one sample, H = W in {16, 28}.
        bias: add a bias to the first linear map.
    """

    def __init__(self, n_latents: int, output_shape: tuple[int, ...], bias: bool = False) -> None:
        super().__init__()
        _, n_stages = _conv_stages(output_shape)
        self.output_shape = tuple(output_shape)
        self.linear = nn.Linear(n_latents, DECODER_CHANNELS * 4, bias=bias)
        self.stages = nn.ModuleList([DecoderCell(DECODER_CHANNELS)])
        channels = DECODER_CHANNELS
        for _ in range(n_stages):
            self.stages.append(nn.Sequential(DecoderCell(channels, up=True), DecoderCell(channels // 2)))
            channels //= 2
        self.output = WeightNormConv2d(channels, output_shape[0], 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, C, H, W)."""
        h = self.linear(z).view(-1, DECODER_CHANNELS, 2, 2)
        side = self.output_shape[1]
        for index, stage in enumerate(self.stages):
            h = stage(h)
            if index == 3 and side == 28:  # after the third up stage: 16x16 -> 14x14, then up to 28
                h = F.interpolate(h, size=(side // 2, side // 2), mode="bilinear", align_corners=False)
        return self.output(h)


def build_networks(
    arch: Architecture,
    input_shape: tuple[int, ...],
    n_outputs: int,
    n_latents: int,
    layer_norm: bool = True,
) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder an architecture names; ``layer_norm=False`` drops the LayerNorm
    that closes each residual dense block (``mlp`` networks, the ``conv`` encoder)."""
    encoders = {"lin": LinearEncoder, "mlp": MLPEncoder, "conv": ConvEncoder}
    decoders = {"lin": LinearDecoder, "mlp": MLPDecoder, "conv": ConvDecoder}
    options = [{"bias": arch.encoder_bias}, {"bias": arch.decoder_bias}]
    for option, expansion in zip(options, (arch.encoder_expansion, arch.decoder_expansion)):
        if expansion is not None:
            option["expansion"] = expansion
    for option, network, with_block in zip(options, (arch.encoder, arch.decoder), BLOCK_NETWORKS):
        if not layer_norm and network in with_block:
            option["layer_norm"] = False
    encoder = encoders[arch.encoder](input_shape, n_outputs, **options[0])
    decoder = decoders[arch.decoder](n_latents, input_shape, **options[1])
    return encoder, decoder
