"""Network parsing and the linear encoder and decoder."""

from __future__ import annotations

import pytest
import torch

from poisson_vae.nets import LinearDecoder, LinearEncoder, parse_architecture


@pytest.mark.parametrize("text", ["lin|lin", "lin+b|lin", "lin|lin+b", " lin+b | lin+b "])
def test_parse_round_trip(text: str) -> None:
    arch = parse_architecture(text)
    assert str(arch) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["", "lin", "lin|lin|lin", "mlp|lin", "lin|lin+c"])
def test_malformed_architectures_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--arch"):
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
