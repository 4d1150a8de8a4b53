"""Base classes and shared layers for recbole_mm's models."""

from recbole_mm.model.multimodal import MultimodalRecommender, load_item_features

__all__ = ["MultimodalRecommender", "load_item_features"]
