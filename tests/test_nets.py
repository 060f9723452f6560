"""Network parsing and the lin, mlp and conv encoders and decoders."""

from __future__ import annotations

import re

import pytest
import torch

from poisson_vae.errors import ConfigError
from poisson_vae.nets import LinearDecoder, LinearEncoder, ResidualDenseBlock, parse_architecture


@pytest.mark.parametrize(
    "text", ["lin|lin", "lin+b|lin", "lin|lin+b", " lin+b | lin+b ", "mlp2+b|mlp4", "mlp|conv+b"]
)
def test_parse_round_trip(text: str) -> None:
    arch = parse_architecture(text)
    assert str(arch) == text.replace(" ", "")


@pytest.mark.parametrize(
    "text", ["", "lin", "lin|lin|lin", "cnn|lin", "lin|lin+c", "lin2|lin", "mlp0|lin", "mlp|conv3"]
)
def test_malformed_architectures_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="^arch "):
        parse_architecture(text)


def test_linear_networks_shapes_and_dictionary() -> None:
    encoder = LinearEncoder((1, 16, 16), 40)
    decoder = LinearDecoder(40, (1, 16, 16))
    assert encoder(torch.randn(3, 1, 16, 16)).shape == (3, 40)
    assert decoder(torch.randn(3, 40)).shape == (3, 1, 16, 16)
    assert decoder.dictionary.shape == (256, 40)
    one_hot = torch.zeros(1, 40)
    one_hot[0, 7] = 1
    assert torch.allclose(decoder(one_hot).flatten(), decoder.dictionary[:, 7])


def test_mlp_networks_shapes_and_layer_norm_left_at_identity() -> None:
    from poisson_vae import ModelConfig, build_vae

    model = build_vae(ModelConfig(arch="mlp+b|mlp", n_latents=24))
    assert model(torch.randn(5, 1, 16, 16), temperature=0.3).reconstruction.shape == (5, 1, 16, 16)
    assert torch.equal(model.encoder.block.norm.weight, torch.ones(256))
    assert model.encoder.linear.bias is not None and model.decoder.linear.bias is None
    # a non-linear decoder: the map into the latents N(0, 0.1^2), every other layer PyTorch's
    # default (uniform, std 1 / sqrt(3 fan_in)), and the prior log-rates on [-6, -2]
    assert float(model.encoder.linear.weight.detach().std()) == pytest.approx(0.1, rel=0.05)
    assert float(model.encoder.linear.bias.detach().abs().max()) == 0
    default = 1 / (3 * 256) ** 0.5
    assert float(model.encoder.block.expand.weight.detach().std()) == pytest.approx(default, rel=0.02)
    assert float(model.decoder.linear.weight.detach().std()) == pytest.approx(
        1 / (3 * 24) ** 0.5, rel=0.1
    )
    assert float(model.latent.prior_log_rate.detach().max()) > -4


def test_an_mlp_of_another_expansion_widens_only_its_block() -> None:
    from poisson_vae import ModelConfig, build_vae

    model = build_vae(ModelConfig(arch="mlp2+b|mlp3", n_latents=10, input_shape=(1, 28, 28)))
    assert model.encoder.block.expand.weight.shape == (2 * 784, 784)
    assert model.decoder.block.expand.weight.shape == (3 * 784, 784)
    paper = build_vae(ModelConfig(arch="mlp|mlp", n_latents=10, input_shape=(1, 28, 28)))
    assert paper.encoder.block.expand.weight.shape == (16 * 784, 784)
    assert paper.decoder.block.expand.weight.shape == (8 * 784, 784)
    assert str(parse_architecture("mlp16|mlp8")) == "mlp16|mlp8"  # spelled out, as named


def test_residual_dense_block_parameter_count() -> None:
    from poisson_vae.nets import ResidualDenseBlock

    block = ResidualDenseBlock(256, 16)
    assert sum(p.numel() for p in block.parameters()) == 256 * 4096 + 4096 + 4096 * 256 + 256 + 512


def test_without_layer_norm_every_residual_block_ends_in_its_sum() -> None:
    from poisson_vae import ModelConfig, build_vae

    def norms(arch: str, layer_norm: bool) -> list[str]:
        config = ModelConfig(arch=arch, n_latents=10, input_shape=(1, 28, 28), layer_norm=layer_norm)
        return [name for name, _ in build_vae(config).named_parameters() if ".norm." in name]

    assert norms("mlp2+b|mlp2+b", True) == [
        "encoder.block.norm.weight", "encoder.block.norm.bias",
        "decoder.block.norm.weight", "decoder.block.norm.bias",
    ]  # fmt: skip
    assert norms("mlp2+b|mlp2+b", False) == norms("conv+b|lin", False) == []
    block = ResidualDenseBlock(16, 2, layer_norm=False)
    x = torch.randn(5, 16)
    expected = x + block.contract(torch.relu(block.expand(x)))
    torch.testing.assert_close(block.eval()(x), expected)
    message = "layer_norm false changes nothing: arch lin|conv has no residual dense block"
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelConfig(arch="lin|conv", layer_norm=False)


@pytest.mark.parametrize("size", [16, 28])
def test_conv_networks_shapes(size: int) -> None:
    from poisson_vae.nets import ConvDecoder, ConvEncoder

    encoder, decoder = ConvEncoder((1, size, size), 20, bias=True), ConvDecoder(10, (1, size, size))
    assert encoder(torch.randn(3, 1, size, size)).shape == (3, 20)
    assert decoder(torch.randn(3, 10)).shape == (3, 1, size, size)
    assert encoder.linear.bias is not None and decoder.linear.bias is None


def test_conv_networks_refuse_other_sizes() -> None:
    from poisson_vae import ModelConfig, build_vae

    with pytest.raises(ValueError, match="16x16 and 28x28"):
        build_vae(ModelConfig(arch="conv|lin", input_shape=(1, 32, 32)))


def test_weight_normalised_convolution_starts_at_its_raw_weight_and_scales_by_its_gain() -> None:
    import torch.nn.functional as F

    from poisson_vae.nets import WeightNormConv2d

    conv = WeightNormConv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    raw = F.conv2d(x, conv.weight, conv.bias, padding=1)
    assert torch.allclose(conv(x), raw, atol=1e-5)
    with torch.no_grad():
        conv.weight.mul_(7.0)  # the direction alone matters ...
        conv.log_gain.add_(torch.log(torch.tensor(2.0)))  # ... and the gain sets the norm
    assert torch.allclose(
        conv(x) - conv.bias.view(1, -1, 1, 1), 2 * (raw - conv.bias.view(1, -1, 1, 1)), atol=1e-4
    )
