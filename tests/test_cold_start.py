"""Item cold start: the split, the withheld items, content-only scoring and the cold test metrics.

References are independent of the code under test: the raw interaction file, parameters before
and after training, and metrics recomputed by hand from the model's scores.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.utils import InputType

from recbole_mm import Config, load_data_and_model, run
from recbole_mm.data.features import FeatureStore
from recbole_mm.evaluation.cold_start import (
    ColdStartError,
    choose_cold_items,
    evaluate_cold_start,
)
from recbole_mm.fast_path import DeviceTrainData
from recbole_mm.model import MultimodalRecommender
from recbole_mm.quick_start import _build

FRACTION = 0.2


@pytest.fixture(scope="module")
def feature_path(small_data):
    """Random 6-d features: ``rand`` for 4 of every 5 ml-small items (the others have none),
    ``full`` for every item (no tied scores of feature-less items)."""
    lines = (small_data / "ml-small" / "ml-small.inter").read_text().splitlines()[1:]
    items = sorted({line.split("\t")[1] for line in lines}, key=int)
    with_features = [item for index, item in enumerate(items) if index % 5]
    rng = np.random.default_rng(2)
    store = FeatureStore(small_data / "cold_features")
    store.write("rand", with_features, rng.normal(size=(len(with_features), 6)))
    store.write("full", items, rng.normal(size=(len(items), 6)))
    return str(store.root)


def _settings(fast_config, feature_path, **extra):
    return dict(
        fast_config, modalities=["rand"], feature_path=feature_path, embedding_size=8,
        cold_start_items=FRACTION, **extra,
    )


def _built(fast_config, feature_path, model="LFMMLGCN", **extra):
    config = Config(model, "ml-small", config_dict=_settings(fast_config, feature_path, **extra))
    dataset, train, valid, test, model_obj = _build(config)
    return config, dataset, train, valid, test, model_obj


def _pairs(loader):
    inter = loader._dataset.inter_feat
    return list(zip(inter["user_id"].tolist(), inter["item_id"].tolist()))


def _raw_pairs(small_data, dataset):
    """(internal user, internal item) of every line of the raw file, read independently."""
    lines = (small_data / "ml-small" / "ml-small.inter").read_text().splitlines()[1:]
    users, items = zip(*(line.split("\t")[:2] for line in lines))
    return list(zip(dataset.token2id("user_id", list(users)).tolist(),
                    dataset.token2id("item_id", list(items)).tolist()))


# ---------------------------------------------------------------- the split
def test_cold_items_have_no_training_or_validation_interactions(small_data, fast_config, feature_path):
    _, dataset, train, valid, test, _ = _built(fast_config, feature_path)
    cold = set(dataset.cold_start.items.tolist())
    raw = _raw_pairs(small_data, dataset)
    raw_items = {item for _, item in raw}
    assert len(cold) == round(FRACTION * len(raw_items)) and cold <= raw_items

    warm = {name: _pairs(loader) for name, loader in (("train", train), ("valid", valid), ("test", test))}
    for name, pairs in warm.items():
        assert not {item for _, item in pairs} & cold, f"a cold item is in the warm {name} set"
    cold_test = _pairs(dataset.cold_start.data)
    assert {item for _, item in cold_test} <= cold

    # every raw interaction is in exactly one place: warm train/valid/test, cold test, or dropped
    # because its user has no training interaction
    trained_users = {user for user, _ in warm["train"]}
    kept = sorted(warm["train"] + warm["valid"] + warm["test"] + cold_test)
    dropped = [(u, i) for u, i in raw if i in cold and u not in trained_users]
    assert sorted(kept + dropped) == sorted(raw)
    assert all(user in trained_users for user, _ in cold_test)
    assert len(cold_test) > 0


def test_the_draw_is_seeded():
    items = np.repeat(np.arange(1, 51), 3)
    first, again = choose_cold_items(items, 0.3, seed=7), choose_cold_items(items, 0.3, seed=7)
    assert np.array_equal(first, again) and len(first) == 15 and len(set(first.tolist())) == 15
    assert not np.array_equal(first, choose_cold_items(items, 0.3, seed=8))
    with pytest.raises(ColdStartError, match="at least one cold"):
        choose_cold_items(items, 0.001, seed=7)


def test_cold_items_are_never_negatives_nor_warm_candidates(fast_config, feature_path):
    _, dataset, train, valid, test, _ = _built(fast_config, feature_path)
    cold = torch.from_numpy(dataset.cold_start.items)
    users = torch.arange(1, train._dataset.user_num).repeat(200)
    recbole_negatives = train._sampler.sample_by_user_ids(users.numpy(), None, 1)
    device_data = DeviceTrainData(train.config, train, "cpu")
    fast_negatives = device_data.sample_negatives(users, torch.Generator().manual_seed(0))
    for negatives in (recbole_negatives, fast_negatives.reshape(-1)):
        assert not torch.isin(negatives, cold).any()
        assert len(torch.unique(negatives)) > 0.5 * (dataset.item_num - 1 - len(cold))  # not degenerate
    for loader in (valid, test):  # the warm evaluation masks cold items like history
        for user in loader.uid_list.tolist():
            assert torch.isin(cold, loader.uid2history_item[user]).all()
    for user in dataset.cold_start.data.uid_list.tolist():  # ...the cold one does not
        assert not torch.isin(cold, dataset.cold_start.data.uid2history_item[user]).any()


# ---------------------------------------------------------------- content-only scoring
@pytest.mark.parametrize("model, options", [
    ("LFMMLGCN", {"weighting": "none"}),
    ("LFMMLGCN", {"weighting": "alpha", "fusion": "concat"}),
    ("LFMMLGCN", {"weighting": "normalized", "fusion": "attention"}),
    ("LFMMLGCN", {"weighting": "equal"}),
    ("EFMMLGCN", {}),
    ("MMLGCN", {"fusion": "max"}),
])
def test_cold_items_are_scored_without_their_id_embedding(fast_config, feature_path, model, options):
    *_, model_obj = _built(fast_config, feature_path, model=model, **options)
    model_obj.eval()
    cold = model_obj.cold_item_mask
    assert cold.sum() > 0
    before = model_obj.forward()[1].detach()
    with torch.no_grad():  # change the ID embedding of every item
        model_obj.item_embedding.weight.add_(torch.randn_like(model_obj.item_embedding.weight))
    after = model_obj.forward()[1].detach()
    torch.testing.assert_close(after[cold], before[cold], rtol=0, atol=0)
    warm = ~cold
    warm[0] = False
    assert not torch.allclose(after[warm], before[warm])  # the warm items do use theirs


def test_a_cold_item_with_features_is_their_projection(fast_config, feature_path):
    *_, model_obj = _built(fast_config, feature_path, n_layers=2)
    items = model_obj.forward()[1].detach()
    projected = model_obj.projections[0]().detach()
    has = model_obj.item_feature_masks["rand"]
    cold_with, cold_without = model_obj.cold_item_mask & has, model_obj.cold_item_mask & ~has
    assert cold_with.any() and cold_without.any()
    torch.testing.assert_close(items[cold_with], projected[cold_with])  # mean of one input
    assert torch.equal(items[cold_without], torch.zeros_like(items[cold_without]))


@pytest.mark.parametrize("fast_path", [False, True])
def test_training_never_touches_the_parameters_of_cold_items(fast_config, feature_path, fast_path):
    settings = _settings(fast_config, feature_path, epochs=2, fast_path=fast_path)
    result = run("MMLGCN", "ml-small", config_dict=settings)  # unfrozen: item tables are learned
    trained = torch.load(result["checkpoint"], weights_only=False)["state_dict"]
    *_, initial = _built(fast_config, feature_path, model="MMLGCN", epochs=2, fast_path=fast_path)
    cold = initial.cold_item_mask
    for name in ("item_embedding.weight", "projections.0.table"):
        start = initial.state_dict()[name]
        assert torch.equal(trained[name][cold], start[cold]), name
        assert not torch.allclose(trained[name][~cold], start[~cold]), name


# ---------------------------------------------------------------- the cold test result
def _hand_metrics(model, cold_data, candidates, history, k=10):
    """Recall@k and NDCG@k of the cold test, ranked in numpy over ``candidates`` minus history."""
    users = cold_data.uid_list
    scores = model.full_sort_predict(Interaction({"user_id": users})).view(len(users), -1)
    recalls, ndcgs = [], []
    for row, user in enumerate(users.tolist()):
        allowed = [i for i in candidates if i not in history.get(user, set())]
        order = sorted(allowed, key=lambda i: -float(scores[row, i]))[:k]
        positives = set(cold_data.uid2positive_item[user].tolist())
        hits = [1.0 if i in positives else 0.0 for i in order]
        recalls.append(sum(hits) / len(positives))
        ideal = sum(1 / np.log2(r + 2) for r in range(min(k, len(positives))))
        ndcgs.append(sum(h / np.log2(r + 2) for r, h in enumerate(hits)) / ideal)
    return np.mean(recalls), np.mean(ndcgs)


@pytest.mark.parametrize("candidates", ["cold", "all"])
def test_cold_test_result_matches_a_hand_ranking(fast_config, feature_path, candidates):
    settings = dict(
        _settings(fast_config, feature_path, epochs=2, cold_start_candidates=candidates),
        modalities=["full"],
    )
    result = run("LFMMLGCN", "ml-small", config_dict=settings)
    cold_result, warm_result = result["cold_test_result"], result["test_result"]
    assert set(cold_result) == set(warm_result)
    assert cold_result != warm_result
    record = json.loads(Path(result["record"]).read_text())
    assert record["cold_test_result"] == pytest.approx(cold_result)

    _, model, dataset, train, valid, test = load_data_and_model(result["checkpoint"])
    model.eval()
    cold = dataset.cold_start
    history = {}
    for user, item in _pairs(train) + _pairs(valid) + _pairs(test):
        history.setdefault(user, set()).add(item)
    pool = cold.items.tolist() if candidates == "cold" else range(1, dataset.item_num)
    with torch.no_grad():
        recall, ndcg = _hand_metrics(model, cold.data, pool, history)
    assert cold_result["recall@10"] == pytest.approx(recall, abs=1e-4)
    assert cold_result["ndcg@10"] == pytest.approx(ndcg, abs=1e-4)


class _FixedScores(torch.nn.Module):
    """Scores from a fixed random table ``[n_users, n_items]``: warm items often outrank cold ones."""

    def __init__(self, n_users, n_items):
        super().__init__()
        self.table = torch.randn(n_users, n_items, generator=torch.Generator().manual_seed(5))

    def full_sort_predict(self, interaction):
        return self.table[interaction["user_id"]].reshape(-1)


def test_cold_candidates_are_the_cold_items_or_all_unseen_items(fast_config, feature_path):
    config, dataset, train, valid, test, _ = _built(fast_config, feature_path)
    scorer = _FixedScores(dataset.user_num, dataset.item_num)
    trainer = SimpleNamespace(model=scorer, config=config, device=torch.device("cpu"),
                              eval_collector=SimpleNamespace(data_struct=None))
    history = {}
    for user, item in _pairs(train) + _pairs(valid) + _pairs(test):
        history.setdefault(user, set()).add(item)
    results = {}
    for candidates, pool in (("cold", dataset.cold_start.items.tolist()), ("all", range(1, dataset.item_num))):
        dataset.cold_start.candidates = candidates
        results[candidates] = evaluate_cold_start(trainer, dataset)
        recall, ndcg = _hand_metrics(scorer, dataset.cold_start.data, pool, history)
        assert results[candidates]["recall@10"] == pytest.approx(recall, abs=1e-4)
        assert results[candidates]["ndcg@10"] == pytest.approx(ndcg, abs=1e-4)
    assert results["cold"]["recall@10"] > results["all"]["recall@10"]  # fewer candidates


def test_without_the_key_there_is_no_cold_result(fast_config, feature_path):
    settings = dict(_settings(fast_config, feature_path), cold_start_items=None)
    result = run("LFMMLGCN", "ml-small", config_dict=settings)
    assert "cold_test_result" not in result
    assert "cold_test_result" not in json.loads(Path(result["record"]).read_text())


# ---------------------------------------------------------------- clear errors
@pytest.mark.parametrize("model", ["LightGCN", "BPR"])
def test_a_model_without_content_is_refused(fast_config, model):
    settings = dict(fast_config, cold_start_items=FRACTION)
    with pytest.raises(ColdStartError, match="not a multimodal model.*unset cold_start_items"):
        run(model, "ml-small", config_dict=settings)


class _NoContentPromise(MultimodalRecommender):
    """A multimodal model that does not say how it scores cold items."""

    input_type = InputType.PAIRWISE


def test_a_multimodal_model_must_promise_content_only_scoring(fast_config, feature_path):
    config = Config(_NoContentPromise, "ml-small", config_dict=_settings(fast_config, feature_path))
    with pytest.raises(ColdStartError, match="content_only_cold_items = True"):
        _build(config)


@pytest.mark.parametrize("settings, message", [
    ({"cold_start_items": 1.5}, "strictly between 0 and 1"),
    ({"cold_start_items": "a lot"}, "strictly between 0 and 1"),
    ({"cold_start_candidates": "warm"}, "choose 'cold'"),
    ({"metrics": ["Recall", "NDCG", "GAUC"], "valid_metric": "Recall@10"}, "GAUC"),
])
def test_bad_settings_are_clear_errors(fast_config, feature_path, settings, message):
    config = Config("LFMMLGCN", "ml-small", config_dict=dict(_settings(fast_config, feature_path), **settings))
    with pytest.raises(ColdStartError, match=message):
        _build(config)


def test_the_device_sampler_follows_recboles_used_ids():
    """Items a caller adds to the sampler's used ids are rejected on the fast path too."""
    used = np.array([{2, 5}, {1, 9}, {1, 2, 3}], dtype=object)
    dataset = SimpleNamespace(uid_field="user_id", iid_field="item_id", item_num=10,
                              inter_feat={"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([2, 3])})
    config = {"NEG_PREFIX": "neg_", "LABEL_FIELD": "label", "seed": 0, "train_batch_size": 4,
              "MODEL_INPUT_TYPE": InputType.PAIRWISE, "train_neg_sample_args": {"sample_num": 1}}
    loader = SimpleNamespace(_dataset=dataset, shuffle=False, _sampler=SimpleNamespace(used_ids=used))
    data = DeviceTrainData(config, loader, "cpu")
    users = torch.tensor([1, 2]).repeat(5000)
    negatives = data.sample_negatives(users, torch.Generator().manual_seed(0)).reshape(-1)
    for user, excluded in ((1, {1, 9}), (2, {1, 2, 3})):
        drawn = set(negatives[users == user].tolist())
        assert drawn == set(range(1, 10)) - excluded
