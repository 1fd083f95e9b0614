"""Smaller Linear layers cut from larger ones: the primitive of every structured pass."""

from __future__ import annotations

import torch
from torch import nn


def select_rows(linear: nn.Linear, rows: torch.Tensor) -> nn.Linear:
    """Keep some output features."""
    new = nn.Linear(linear.in_features, len(rows), bias=linear.bias is not None)
    new = new.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[rows])
        if linear.bias is not None:
            new.bias.copy_(linear.bias[rows])
    return new


def select_columns(linear: nn.Linear, columns: torch.Tensor) -> nn.Linear:
    """Keep some input features; the bias belongs to the outputs and stays whole."""
    new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
    new = new.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, columns])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new


def resized(linear: nn.Linear, in_features: int, out_features: int) -> nn.Linear:
    """An uninitialised Linear of another shape (its weights are loaded next)."""
    if (linear.in_features, linear.out_features) == (in_features, out_features):
        return linear
    new = nn.Linear(in_features, out_features, bias=linear.bias is not None)
    return new.to(device=linear.weight.device, dtype=linear.weight.dtype)
