"""Fast path: training batches and full-sort evaluation on the model's device (``fast_path``)."""

from recbole_mm.fast_path.evaluator import SUPPORTED_METRICS, FullSortEvaluator
from recbole_mm.fast_path.trainer import (
    RECBOLE_MODELS,
    DeviceTrainData,
    FastPathError,
    FastTrainer,
    choose_trainer,
    training_fallback_reason,
)

__all__ = [
    "RECBOLE_MODELS",
    "SUPPORTED_METRICS",
    "DeviceTrainData",
    "FastPathError",
    "FastTrainer",
    "FullSortEvaluator",
    "choose_trainer",
    "training_fallback_reason",
]
