"""Every RecBole general model trains one epoch and tests with its best checkpoint reloaded.

This exercises the compatibility layer end to end: numpy aliases, SciPy adjacency builders,
checkpoint loading under torch >= 2.6 (``load_best_model=True``), on a real slice of ml-100k.
"""

import json
import math

import pytest

from recbole_mm import run
from recbole_mm.registry import registry

# extra settings some models need to fit a one-epoch smoke run (their defaults stay untouched)
MODEL_SETTINGS = {
    "ConvNCF": {"cnn_channels": [1, 16, 16], "cnn_kernels": [4, 2], "cnn_strides": [4, 2], "embedding_size": 16},
    "NNCF": {"neigh_num": 10},
    "NCL": {"num_clusters": 10},
    "DiffRec": {"steps": 5},
    "LDiffRec": {"steps": 5},
}


def _general_models():
    """Every model in RecBole's general_recommender package (GENERAL and TRADITIONAL types)."""
    models = registry.recbole_models()
    return sorted(name for name, cls in models.items() if ".general_recommender." in cls.__module__)


@pytest.mark.parametrize("model", _general_models())
def test_general_model_trains_and_reloads_best(model, fast_config):
    config = dict(fast_config, **MODEL_SETTINGS.get(model, {}))
    result = run(model=model, dataset="ml-small", config_dict=config, saved=True)

    assert result["checkpoint"] is not None
    test = result["test_result"]
    assert set(test) >= {"recall@10", "ndcg@10"}
    assert all(0.0 <= value <= 1.0 and not math.isnan(value) for value in test.values())
    with open(result["record"], encoding="utf-8") as f:
        record = json.load(f)
    assert record["model"] == model and record["test_result"] == test
