"""Base classes for recbole_mm's models."""

from recbole_mm.model.graph import MultimodalGraphRecommender
from recbole_mm.model.multimodal import MultimodalRecommender, load_item_features

__all__ = ["MultimodalGraphRecommender", "MultimodalRecommender", "load_item_features"]
