"""Popularity-bias metric plugins, checked against hand-computed values, and per-user results."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from recbole.evaluator.collector import DataStruct

from recbole_mm.plugins.metrics import ARP, LongTailShare, PopRSP, long_tail_mask, popularity
from recbole_mm.quick_start import run

# 6 items (+ padding 0) with 20 training interactions: the short head (80% = 16) is items 1 and 2
COUNTS = Counter({1: 10, 2: 6, 3: 2, 4: 1, 5: 1})  # item 6 has no training interaction
NUM_ITEMS = 7
# two users' top-2 lists; user 1's history is {2}, user 2's {1, 3}: items masked per user,
# padding item 0 masked for both
TOP = [[1, 3], [2, 6]]
MASKED_COUNT = [2, 1, 1, 1, 0, 0, 0]
CONFIG = {"topk": [1, 2], "metric_decimal_place": 4, "popularity_head_share": 0.8}


def _data():
    data = DataStruct()
    data.set("rec.items", torch.tensor(TOP))
    data.set("data.num_items", NUM_ITEMS)
    data.set("data.count_items", COUNTS)
    data.set("rec.masked_count", torch.tensor(MASKED_COUNT))
    return data


def test_long_tail_split_by_hand():
    counts = popularity(COUNTS, NUM_ITEMS)
    assert counts.tolist() == [0, 10, 6, 2, 1, 1, 0]
    # 10 < 16 <= 10 + 6: items 1, 2 are the head; item 6 (never trained on) is in the tail
    assert long_tail_mask(counts).tolist() == [False, False, False, True, True, True, True]
    # a 50% head is item 1 alone (10 >= 10)
    assert long_tail_mask(counts, 0.5).tolist() == [False, False, True, True, True, True, True]
    with pytest.raises(ValueError, match="popularity_head_share"):
        long_tail_mask(counts, 1.5)


def test_arp_by_hand():
    # @1: (10 + 6) / 2; @2: user 1 (10 + 2) / 2 = 6, user 2 (6 + 0) / 2 = 3 -> 4.5
    assert ARP(CONFIG).calculate_metric(_data()) == {"arp@1": 8.0, "arp@2": 4.5}


def test_long_tail_share_by_hand():
    # @1: both users get a head item; @2: one tail item of two for each user
    assert LongTailShare(CONFIG).calculate_metric(_data()) == {
        "longtailshare@1": 0.0,
        "longtailshare@2": 0.5,
    }


def test_poprsp_by_hand():
    # candidates: head 2 users x 2 items - 2 masked = 2; tail 2 x 4 - 1 masked (item 3) = 7
    # @2: 2 head and 2 tail recommendations: P = (2/2, 2/7): std / mean = (5/14) / (9/14) = 5/9
    # @1: 2 head, 0 tail: P = (1, 0): 0.5 / 0.5 = 1
    assert PopRSP(CONFIG).calculate_metric(_data()) == {"poprsp@1": 1.0, "poprsp@2": 0.5556}


def test_poprsp_is_zero_at_parity():
    data = _data()
    # every candidate recommended: both probabilities are 1
    data.set("rec.items", torch.tensor([[1, 2, 3, 4, 5, 6]]))
    data.set("rec.masked_count", torch.tensor([1, 0, 0, 0, 0, 0, 0]))
    assert PopRSP(dict(CONFIG, topk=[6])).calculate_metric(data) == {"poprsp@6": 0.0}


POPULARITY_METRICS = ["NDCG", "Recall", "ARP", "PopRSP", "ItemCoverage", "GiniIndex", "LongTailShare"]


COBRAR_SMALL = {"projection_size": 32, "branch_layers": [16], "embedding_size": 8}


@pytest.mark.parametrize(
    "model, settings", [("BPR", {}), ("BPR", {"fast_path": True}), ("CoBraR", COBRAR_SMALL)]
)
def test_popularity_metrics_in_a_run(fast_config, model, settings):
    config = dict(fast_config, metrics=POPULARITY_METRICS, topk=[5, 10], **settings)
    result = run(model, "ml-small", config_dict=config)
    test = result["test_result"]
    for metric in ("arp@5", "poprsp@10", "itemcoverage@5", "giniindex@10", "longtailshare@5"):
        assert metric in test
    assert test["arp@5"] > 0 and 0 <= test["longtailshare@10"] <= 1
    assert 0 < test["itemcoverage@5"] <= test["itemcoverage@10"] <= 1


def test_arp_equals_recboles_average_popularity(fast_config):
    config = dict(fast_config, metrics=["ARP", "AveragePopularity", "NDCG"], topk=[5, 10])
    test = run("BPR", "ml-small", config_dict=config)["test_result"]
    assert test["arp@5"] == test["averagepopularity@5"]
    assert test["arp@10"] == test["averagepopularity@10"]


def test_masked_count_is_collected_per_evaluation(fast_config):
    """rec.masked_count counts, per item, the users whose ranking excluded it."""
    from recbole.evaluator.collector import Collector

    from recbole_mm.config import Config

    config = Config("BPR", "ml-small", config_dict=dict(fast_config, metrics=["NDCG", "PopRSP"], topk=[2], valid_metric="NDCG@2"))
    collector = Collector(config)
    scores = torch.zeros(3, 5)
    scores[:, 0] = -np.inf
    scores[0, 2] = scores[1, 2] = scores[2, 4] = -np.inf
    positive = torch.tensor([0]), torch.tensor([1])
    for _ in range(2):  # two batches of one evaluation add up
        collector.eval_batch_collect(scores.clone(), None, *positive)
    assert collector.get_data_struct().get("rec.masked_count").tolist() == [6, 0, 4, 0, 2]
    collector.eval_batch_collect(scores.clone(), None, *positive)  # the next evaluation restarts
    assert collector.get_data_struct().get("rec.masked_count").tolist() == [3, 0, 2, 0, 1]


@pytest.mark.parametrize("fast_path", [False, True])
def test_per_user_values_average_to_the_test_result(fast_config, fast_path):
    config = dict(
        fast_config,
        metrics=["NDCG", "Recall", "ARP", "ItemCoverage"],
        topk=[5, 10],
        save_per_user=True,
        fast_path=fast_path,
    )
    result = run("LightGCN", "ml-small", config_dict=config)
    record = json.loads(open(result["record"]).read())
    per_user = record["per_user"]
    assert per_user == result["per_user"]
    assert len(per_user["users"]) == len(set(per_user["users"])) > 50
    assert set(per_user["metrics"]) == {"ndcg@5", "ndcg@10", "recall@5", "recall@10", "arp@5", "arp@10"}
    for name, values in per_user["metrics"].items():
        assert len(values) == len(per_user["users"])
        assert round(float(np.mean(values)), 4) == pytest.approx(result["test_result"][name], abs=1e-4)
    assert len(set(per_user["metrics"]["ndcg@10"])) > 5  # real per-user spread, not a constant


def test_per_user_needs_full_sort(fast_config):
    eval_args = dict(fast_config["eval_args"], mode="uni100")
    config = dict(fast_config, save_per_user=True, eval_args=eval_args)
    with pytest.raises(ValueError, match="full-sort"):
        run("BPR", "ml-small", config_dict=config)
