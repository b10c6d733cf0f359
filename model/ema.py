"""Exponential moving average of the generator's weights (the weights that are evaluated and served)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema_module: nn.Module, module: nn.Module, *, decay: float) -> None:
    """θ_ema <- decay θ_ema + (1 - decay) θ for parameters; buffers (batch-norm running
    statistics) are copied, as the authors take them from the live generator."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    ema_params, params = dict(ema_module.named_parameters()), dict(module.named_parameters())
    ema_buffers, buffers = dict(ema_module.named_buffers()), dict(module.named_buffers())
    if ema_params.keys() != params.keys() or ema_buffers.keys() != buffers.keys():
        raise ValueError("ema_update: the EMA module and the module have different parameters or buffers")
    for name, param in params.items():
        ema_params[name].lerp_(param.detach(), 1.0 - decay)
    for name, buffer in buffers.items():
        ema_buffers[name].copy_(buffer)
