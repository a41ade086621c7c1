"""The phone probe: it reads a label the features carry, not one they do not, and its receptive field is the one
asked for (a label carried by the next token is found with a radius of 1, not 0)."""

from __future__ import annotations

import torch

from bench.phone_probe import accuracy, train_probe


def make_data(n: int, seed: int, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels 1..4 (0 = nothing sung) on [n, 20] frames; one-hot features, moved ``shift`` tokens later."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (n, 20), generator=generator)
    features = torch.nn.functional.one_hot(labels, 5).float()
    features = torch.roll(features, shifts=shift, dims=1)
    return features + 0.1 * torch.randn(features.shape, generator=generator), labels


def test_the_probe_reads_what_the_features_carry_and_no_more():
    train_x, train_y = make_data(256, 0)
    val_x, val_y = make_data(64, 1)
    assert accuracy(train_probe(train_x, train_y, 0, 5, steps=150), val_x, val_y) > 0.95
    noise = torch.randn(train_x.shape, generator=torch.Generator().manual_seed(2))
    blind = accuracy(train_probe(noise, train_y, 0, 5, steps=150), torch.randn(val_x.shape), val_y)
    assert blind < 0.45  # four sung labels: chance is 0.25


def test_the_probe_sees_exactly_its_radius():
    train_x, train_y = make_data(256, 0, shift=1)  # each label sits in the next token's features
    val_x, val_y = make_data(64, 1, shift=1)
    assert accuracy(train_probe(train_x, train_y, 0, 5, steps=150), val_x, val_y) < 0.45
    assert accuracy(train_probe(train_x, train_y, 1, 5, steps=150), val_x, val_y) > 0.9
