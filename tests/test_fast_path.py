"""The fast path: negative sampling and batches on the device, full-sort evaluation equal to
RecBole's, and the shared graph-propagation layer (checked against dense computations)."""

import logging
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from recbole.model.general_recommender import BPR, DMF
from recbole.trainer import NCLTrainer, Trainer
from recbole.utils import InputType, init_seed

from recbole_mm import Config, run
from recbole_mm.fast_path import (
    DeviceTrainData,
    FastPathError,
    FastTrainer,
    training_fallback_reason,
)
from recbole_mm.layers import mean_propagation, normalized_adjacency
from recbole_mm.quick_start import _build, get_trainer, load_data

ALL_METRICS = [
    "Recall",
    "NDCG",
    "Precision",
    "MAP",
    "Hit",
    "MRR",
    "ItemCoverage",
    "AveragePopularity",
    "GiniIndex",
    "ShannonEntropy",
    "TailPercentage",
    "ARP",  # recbole_mm's metric plugins
    "LongTailShare",
    "PopRSP",
]
MULTIMODAL_MODELS = ["LFMMLGCN", "EFMMLGCN", "MMLGCN"]
OWN_MODELS = [*MULTIMODAL_MODELS, "CoBraR"]  # recbole_mm's models on RecBole's Trainer contract


# Propagation layer
def _interactions():
    """A small user-item matrix ``[5, 7]`` with a repeated pair and users/items without edges."""
    rows = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3, 1])
    cols = np.array([1, 2, 4, 2, 3, 1, 4, 5, 6, 2])  # (1, 2) twice
    return sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(5, 7))


def _dense_adjacency(interactions):
    """D^-1/2 A D^-1/2 from the definition, densely (isolated nodes: zero rows)."""
    r = (interactions.toarray() > 0).astype(np.float64)
    n_users, n_items = r.shape
    a = np.zeros((n_users + n_items,) * 2)
    a[:n_users, n_users:] = r
    a[n_users:, :n_users] = r.T
    degree = a.sum(axis=1)
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    return scale[:, None] * a * scale[None, :]


def test_normalized_adjacency_equals_dense_computation():
    adjacency = normalized_adjacency(_interactions(), dtype=torch.float64)
    assert adjacency.layout == torch.sparse_csr and adjacency.shape == (12, 12)
    np.testing.assert_allclose(
        adjacency.to_dense().numpy(), _dense_adjacency(_interactions()), atol=1e-15
    )


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_propagation_gradients_equal_dense_autograd(dtype, tol):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(12, 4, generator=generator, dtype=dtype)
    weights = torch.randn(12, 4, generator=generator, dtype=dtype)
    sparse_x = x.clone().requires_grad_()
    out = mean_propagation(normalized_adjacency(_interactions(), dtype=dtype), sparse_x, n_layers=3)
    (out * weights).sum().backward()

    dense = torch.tensor(_dense_adjacency(_interactions()), dtype=dtype)
    dense_x = x.clone().requires_grad_()
    layers = [dense_x]
    for _ in range(3):
        layers.append(dense @ layers[-1])
    dense_out = torch.stack(layers).mean(dim=0)
    (dense_out * weights).sum().backward()

    torch.testing.assert_close(out, dense_out, rtol=tol, atol=tol)
    torch.testing.assert_close(sparse_x.grad, dense_x.grad, rtol=tol, atol=tol)


def test_building_the_adjacency_prints_no_beta_notice():
    # torch warns once per process that sparse CSR support is in beta; recbole_mm chose CSR
    code = ("import recbole_mm, scipy.sparse as sp; from recbole_mm.layers import normalized_adjacency; "
            "normalized_adjacency(sp.eye(3, 4))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "beta" not in done.stderr


def test_propagation_refuses_a_learned_adjacency():
    adjacency = normalized_adjacency(_interactions()).requires_grad_()
    with pytest.raises(ValueError, match="detach"):
        mean_propagation(adjacency, torch.randn(12, 2), n_layers=1)


# Sampler and batches
def _tiny_data(pairs, n_items, sample_num, input_type, batch_size=6, shuffle=True):
    """DeviceTrainData over explicit (user, item) pairs, with RecBole's field names."""
    users, items = (torch.tensor(column) for column in zip(*pairs))
    dataset = SimpleNamespace(
        uid_field="user_id",
        iid_field="item_id",
        item_num=n_items,
        inter_feat={"user_id": users, "item_id": items},
    )
    config = {
        "NEG_PREFIX": "neg_",
        "LABEL_FIELD": "label",
        "seed": 3,
        "train_batch_size": batch_size,
        "MODEL_INPUT_TYPE": input_type,
        "train_neg_sample_args": {"sample_num": sample_num},
    }
    return DeviceTrainData(config, SimpleNamespace(_dataset=dataset, shuffle=shuffle), "cpu")


PAIRS = [(1, 2), (1, 5), (1, 7), (2, 1), (2, 2), (3, 9), (3, 10), (1, 5)]  # (1, 5) repeated


def test_negatives_are_uniform_over_the_items_a_user_has_not_seen():
    data = _tiny_data(PAIRS, n_items=11, sample_num=1, input_type=InputType.PAIRWISE)
    draws = 70_000
    negatives = data.sample_negatives(torch.full((draws,), 1), torch.Generator().manual_seed(0))
    assert negatives.shape == (1, draws)
    counts = np.bincount(negatives.reshape(-1).numpy(), minlength=11)
    allowed = [1, 3, 4, 6, 8, 9, 10]  # not the padding item 0, not user 1's items 2, 5, 7
    assert counts[[0, 2, 5, 7]].sum() == 0
    expected = draws / len(allowed)
    chi_square = ((counts[allowed] - expected) ** 2 / expected).sum()
    # 6 degrees of freedom: p(chi2 > 40) ~ 1e-6; moving rejected draws to the next item gives ~8000
    assert chi_square < 40


@pytest.mark.parametrize("input_type", [InputType.PAIRWISE, InputType.POINTWISE])
def test_batches_are_laid_out_as_recbole_lays_them(input_type):
    data = _tiny_data(PAIRS, n_items=11, sample_num=2, input_type=input_type, batch_size=6)
    positives = set(PAIRS)
    pointwise = input_type == InputType.POINTWISE
    times = 3 if pointwise else 2
    batches = list(data.epoch(0))
    per_batch = 6 // times  # RecBole: train_batch_size // times positives a batch
    assert len(batches) == len(data.epoch(0)) == -(-len(PAIRS) // per_batch)
    seen = []
    for batch in batches:
        users, items = batch["user_id"], batch["item_id"]
        b = len(users) // times
        assert b <= per_batch
        assert torch.equal(users, users[:b].repeat(times))
        if pointwise:
            assert set(batch.interaction) == {"user_id", "item_id", "label"}
            assert torch.equal(batch["label"], torch.tensor([1.0] * b + [0.0] * (2 * b)))
            positive_items, negatives = items[:b], items[b:]
        else:
            assert set(batch.interaction) == {"user_id", "item_id", "neg_item_id"}
            assert torch.equal(items, items[:b].repeat(times))
            positive_items, negatives = items[:b], batch["neg_item_id"]
        seen += list(zip(users[:b].tolist(), positive_items.tolist()))
        # block j holds the j-th negative of every positive: none is one of its user's items
        for user, negative in zip(users[b:] if pointwise else users, negatives.tolist()):
            assert (int(user), negative) not in positives and 1 <= negative <= 10
    assert sorted(seen) == sorted(PAIRS)  # every training row once per epoch
    assert all(torch.equal(a["item_id"], b["item_id"]) for a, b in zip(batches, data.epoch(0)))
    assert any(not torch.equal(a["item_id"], b["item_id"]) for a, b in zip(batches, data.epoch(1)))


def test_a_user_with_every_item_is_an_error():
    with pytest.raises(FastPathError, match="every item"):
        _tiny_data([(1, 1), (1, 2), (2, 1)], n_items=3, sample_num=1, input_type=InputType.PAIRWISE)


def _config(fast_config, model, **extra):
    return Config(model, "ml-small", config_dict=dict(fast_config, **extra))


def test_real_batches_match_recbole_and_avoid_training_positives(fast_config):
    config = _config(
        fast_config, "BPR", train_neg_sample_args={"distribution": "uniform", "sample_num": 3}
    )
    _, train_data, _, _, _ = _build(config)
    recbole_batch = next(iter(train_data))
    data = DeviceTrainData(config, train_data, "cpu")
    batch = next(iter(data.epoch(0)))
    assert set(batch.interaction) == set(recbole_batch.interaction)
    assert len(batch) == len(recbole_batch)
    assert all(batch[k].dtype == recbole_batch[k].dtype for k in batch.interaction)

    inter = train_data._dataset.inter_feat
    training = set(zip(inter["user_id"].tolist(), inter["item_id"].tolist()))
    negatives = data.sample_negatives(data.users, torch.Generator().manual_seed(1))
    users = data.users.repeat(3).tolist()
    assert not training & set(zip(users, negatives.reshape(-1).tolist()))
    assert negatives.min() >= 1 and negatives.max() < data.n_items


# Which trainer, which loop
def test_get_trainer_uses_fast_trainer_only_in_place_of_recboles_plain_trainer(fast_config):
    assert get_trainer(_config(fast_config, "LightGCN")) is Trainer  # fast_path defaults to False
    assert get_trainer(_config(fast_config, "LightGCN", fast_path=True)) is FastTrainer
    assert (
        get_trainer(_config(fast_config, "LightGCN", fast_path=True, trainer="Trainer")) is Trainer
    )
    assert get_trainer(_config(fast_config, "NCL", fast_path=True)) is NCLTrainer


@pytest.mark.parametrize("model", OWN_MODELS)
def test_fast_path_is_on_by_default_for_recbole_mms_own_models(fast_config, model):
    # proven equivalent below: the same metrics for the same state, the same learning curve
    assert _config(fast_config, model)["fast_path"] is True
    assert get_trainer(_config(fast_config, model)) is FastTrainer
    assert get_trainer(_config(fast_config, model, fast_path=False)) is Trainer  # --fast_path=False


def test_training_fallback_reasons(fast_config):
    config = _config(fast_config, "DMF", inter_matrix_type="rating")
    assert "inter_matrix_type" in training_fallback_reason(config, DMF, None)

    class PluginBPR(BPR):
        pass

    assert "fast_path_compatible" in training_fallback_reason(config, PluginBPR, None)

    config = _config(
        fast_config, "BPR", train_neg_sample_args={"distribution": "popularity", "sample_num": 1}
    )
    _, train_data, _, _, _ = _build(config)
    assert "uniform" in training_fallback_reason(config, BPR, train_data)
    PluginBPR.fast_path_compatible = True
    config = _config(fast_config, "BPR")
    _, train_data, _, _, _ = _build(config)
    assert training_fallback_reason(config, PluginBPR, train_data) is None


# Optimizer implementation
def _trained(fast_config, impl, **extra):
    config = _config(fast_config, "BPR", fast_path=True, optimizer_impl=impl, **extra)
    _, train_data, _, _, model_obj = _build(config)
    trainer = FastTrainer(config, model_obj)
    trainer.fit(train_data, saved=False)
    return trainer, [p.detach().clone() for p in model_obj.parameters()]


def test_foreach_optimizer_trains_bit_for_bit_like_recboles(fast_config):
    stock, stock_parameters = _trained(fast_config, "default")
    foreach, foreach_parameters = _trained(fast_config, "foreach")
    fused, fused_parameters = _trained(fast_config, "fused")
    assert type(stock.optimizer) is type(foreach.optimizer) is torch.optim.Adam
    assert not stock.optimizer.defaults["foreach"] and foreach.optimizer.defaults["foreach"]
    assert fused.optimizer.defaults["fused"] and fused.optimizer.param_groups[0]["fused"]
    assert foreach.optimizer.defaults["lr"] == stock.optimizer.defaults["lr"]
    assert all(torch.equal(a, b) for a, b in zip(stock_parameters, foreach_parameters))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(stock_parameters, fused_parameters))


def test_adamw_keeps_its_hyperparameters_and_per_group_settings(fast_config):
    trainer, _ = _trained(fast_config, "foreach", learner="adamw", weight_decay=0.01)
    optimizer = trainer.optimizer
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["foreach"]
    assert optimizer.param_groups[0]["weight_decay"] == 0.01
    assert optimizer.param_groups[0]["decoupled_weight_decay"]
    head, *rest = list(trainer.model.parameters())
    groups = [{"params": [head], "lr": 0.5}, {"params": rest}]
    optimizer = trainer._build_optimizer(params=groups)
    assert [group["lr"] for group in optimizer.param_groups] == [0.5, trainer.learning_rate]
    assert all(group["foreach"] for group in optimizer.param_groups)


def test_resuming_keeps_the_configured_implementation(fast_config, tmp_path):
    config = _config(
        fast_config, "BPR", fast_path=True, optimizer_impl="default", checkpoint_dir=str(tmp_path)
    )
    _, train_data, _, _, model_obj = _build(config)
    saved = FastTrainer(config, model_obj)
    saved.fit(train_data, saved=True)  # checkpoint holds a default (per-parameter loop) Adam
    config = _config(
        fast_config, "BPR", fast_path=True, optimizer_impl="fused", checkpoint_dir=str(tmp_path)
    )
    resumed = FastTrainer(config, model_obj)
    resumed.resume_checkpoint(saved.saved_model_file)
    group = resumed.optimizer.param_groups[0]
    assert group["fused"] and not group["foreach"]
    saved_state = saved.optimizer.state_dict()["state"]
    resumed_state = resumed.optimizer.state_dict()["state"]
    assert all(
        torch.equal(saved_state[i]["exp_avg"], resumed_state[i]["exp_avg"]) for i in saved_state
    )


def test_optimizer_impl_errors_and_fallbacks(fast_config, caplog):
    config = _config(fast_config, "BPR", fast_path=True, optimizer_impl="fast")
    _, _, _, _, model_obj = _build(config)
    with pytest.raises(FastPathError, match="optimizer_impl must be one of"):
        FastTrainer(config, model_obj)
    config = _config(fast_config, "BPR", fast_path=True, optimizer_impl="fused", learner="rmsprop")
    with caplog.at_level(logging.INFO):
        optimizer = FastTrainer(config, model_obj).optimizer
    assert type(optimizer) is torch.optim.RMSprop and "RMSprop has no 'fused'" in caplog.text
    config = _config(fast_config, "BPR", fast_path=True, predict_batch_size=-5)
    with pytest.raises(FastPathError, match="predict_batch_size must be a positive integer"):
        FastTrainer(config, model_obj)


def test_distributed_mode_is_refused():
    with pytest.raises(FastPathError, match="one process per GPU"):
        FastTrainer({"single_spec": False, "nproc": 2, "world_size": 2}, model=None)


# Evaluation equality
# NeuMF: POINTWISE, scored through predict() over every item (it has no full_sort_predict), and its
# sigmoid scores tie. Models made small: the suite runs on 2 shared CPU cores.
MODEL_SETTINGS = {
    "NeuMF": {"mf_embedding_size": 8, "mlp_embedding_size": 8, "mlp_hidden_size": [8]},
    "NGCF": {"embedding_size": 16, "hidden_size_list": [16, 16]},
    "CoBraR": {"projection_size": 32, "branch_layers": [32], "embedding_size": 16},
}


def _settings(model, feature_path):
    """Small sizes of ``model``; the multimodal ones fuse conftest's ``rand`` features."""
    settings = dict(MODEL_SETTINGS.get(model, {}))
    if model in MULTIMODAL_MODELS:
        settings.update(modalities=["rand"], feature_path=feature_path, embedding_size=8)
    return settings


@pytest.mark.parametrize("seed", [2020, 7])
@pytest.mark.parametrize("model", ["BPR", "LightGCN", "NGCF", "NeuMF", *OWN_MODELS])
def test_evaluation_equals_recboles_evaluator(fast_config, feature_path, model, seed):
    # eval_batch_size of 7 users' scores: several batches, the last one short
    config = _config(
        fast_config,
        model,
        seed=seed,
        metrics=ALL_METRICS,
        topk=[5, 10, 20],
        train_batch_size=2048,
        eval_batch_size=7 * 1500,
        **_settings(model, feature_path),
    )
    _, train_data, valid_data, test_data, model_obj = _build(config)
    fast = FastTrainer(config, model_obj)
    fast.fit(train_data, saved=False)  # one epoch: a trained, not an initial, model state
    stock = Trainer(config, model_obj)
    stock.eval_collector.data_collect(train_data)
    for eval_data in (valid_data, test_data):  # train items masked; then train + valid
        expected = stock.evaluate(eval_data, load_best_model=False)
        got = fast.evaluate(eval_data, load_best_model=False)
        assert list(got.items()) == list(expected.items())
        assert len(got) == len(ALL_METRICS) * 3


def test_predict_batch_size_bounds_predict_calls_and_keeps_the_metrics(fast_config):
    config = _config(
        fast_config,
        "NeuMF",
        metrics=["Recall", "NDCG"],
        predict_batch_size=1000,
        **MODEL_SETTINGS["NeuMF"],
    )
    _, train_data, _, test_data, model_obj = _build(config)
    rows = []
    predict = model_obj.predict
    model_obj.predict = lambda interaction: rows.append(len(interaction)) or predict(interaction)
    fast = FastTrainer(config, model_obj)
    got = fast.evaluate(test_data, load_best_model=False)
    assert fast.test_batch_size == 1000 and max(rows) <= 1000
    # NeuMF has no full_sort_predict: its evaluation batches hold at most 1000 scores too
    n_items = test_data._dataset.item_num
    assert fast._evaluator(test_data).users_per_batch == max(1000 // n_items, 1)
    stock = Trainer(config, model_obj)
    stock.eval_collector.data_collect(train_data)
    assert stock.test_batch_size == config["eval_batch_size"] > 1000
    assert got == stock.evaluate(test_data, load_best_model=False)


def test_sampled_evaluation_falls_back_to_recbole(fast_config, caplog):
    eval_args = dict(fast_config["eval_args"], mode="uni50")
    config = _config(fast_config, "BPR", eval_args=eval_args)
    _, _, valid_data, _, model_obj = _build(config)
    init_seed(config["seed"], True)  # sampled evaluation draws its negatives from numpy
    expected = Trainer(config, model_obj).evaluate(valid_data, load_best_model=False)
    init_seed(config["seed"], True)
    with caplog.at_level(logging.WARNING):
        got = FastTrainer(config, model_obj).evaluate(valid_data, load_best_model=False)
    assert got == expected
    assert "RecBole's evaluator" in caplog.text


# End to end
@pytest.mark.parametrize("model", ["LightGCN", "LFMMLGCN", "CoBraR"])
def test_fast_path_learns_like_recbole(fast_config, feature_path, model):
    settings = dict(fast_config, epochs=3, learning_rate=0.01, **_settings(model, feature_path))
    stock = run(model, "ml-small", config_dict=dict(settings, fast_path=False))
    fast = run(model, "ml-small", config_dict=dict(settings, fast_path=True))
    stock_recall, fast_recall = stock["test_result"]["recall@20"], fast["test_result"]["recall@20"]
    assert min(stock_recall, fast_recall) > 0.1  # learned: a random ranking scores ~0.01 here
    assert abs(stock_recall - fast_recall) < 0.05  # same curve, different random draws


def test_a_model_outside_the_list_trains_with_recboles_loop(fast_config, caplog):
    with caplog.at_level(logging.WARNING):
        result = run("MultiVAE", "ml-small", config_dict=dict(fast_config, fast_path=True))
    assert "training MultiVAE with RecBole's loop" in caplog.text
    assert "evaluating with RecBole's evaluator" not in caplog.text
    assert 0 <= result["test_result"]["recall@20"] <= 1


def test_lightgcn_on_the_shared_propagation_layer_is_the_same_model(fast_config):
    from recbole.data import data_preparation

    from recbole_mm import Config, create_dataset
    from recbole_mm.fast_path.propagation import accelerate_propagation

    config = Config("LightGCN", "ml-small", config_dict=fast_config)
    train = data_preparation(config, create_dataset(config))[0]._dataset
    model = config.model_class(config, train)
    users, items = model.forward()
    (users.sum() + items.pow(2).sum()).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    assert accelerate_propagation(model)
    fast_users, fast_items = model.forward()
    (fast_users.sum() + fast_items.pow(2).sum()).backward()
    torch.testing.assert_close(fast_users, users, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_items, items, rtol=1e-5, atol=1e-6)
    for grad, param in zip(grads, model.parameters()):
        torch.testing.assert_close(param.grad, grad, rtol=1e-5, atol=1e-6)
    assert not accelerate_propagation(torch.nn.Linear(2, 2))  # other models are left alone


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="needs an x86 CPU with SSE3")
def test_flush_denormal_sets_the_mode_and_none_leaves_it(fast_config):
    subnormal = torch.tensor([1e-40])  # below float32's smallest normal, 1.2e-38

    def load_with(flush):
        load_data(Config("BPR", "ml-small", config_dict={**fast_config, "flush_denormal": flush}))
        return (subnormal * 1.0).item()

    try:
        assert load_with(True) == 0.0
        assert load_with(None) == 0.0  # ~: the process's mode is left as it was
        assert load_with(False) > 0.0
    finally:
        torch.set_flush_denormal(False)
