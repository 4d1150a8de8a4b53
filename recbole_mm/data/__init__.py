"""Data helpers on top of RecBole's datasets: the multimodal feature store."""

from recbole_mm.data.features import FeatureError, FeatureStore, aligned_field

__all__ = ["FeatureError", "FeatureStore", "aligned_field"]
