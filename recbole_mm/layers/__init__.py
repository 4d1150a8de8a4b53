"""Layers shared by recbole_mm's models."""

from recbole_mm.layers.propagation import (
    SymmetricSparseMatmul,
    mean_propagation,
    normalized_adjacency,
    propagate,
)

__all__ = ["SymmetricSparseMatmul", "mean_propagation", "normalized_adjacency", "propagate"]
