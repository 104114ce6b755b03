"""Backbones and heads. Backbones are registered in ``fedx_bench.registry.BACKBONES``."""

from .backbones import CNN4, ResNetCifar, build_backbone
from .heads import mlp_head

__all__ = ["CNN4", "ResNetCifar", "build_backbone", "mlp_head"]
