"""Evaluation protocols beyond RecBole's: item cold start."""

from recbole_mm.evaluation.cold_start import (
    ColdStart,
    ColdStartError,
    data_preparation,
    evaluate_cold_start,
)

__all__ = ["ColdStart", "ColdStartError", "data_preparation", "evaluate_cold_start"]
