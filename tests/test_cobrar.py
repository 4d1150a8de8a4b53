"""CoBraR, recbole_mm's built-in plugin: one shared branch, hand-computed scores, full-sort ranking
consistent with pairwise scoring, and end-to-end training through ``recbole_mm.run``."""

import math

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.model.general_recommender import DMF
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_mm import Config, create_dataset, run

# small sizes for the tests that do not depend on the YAML's defaults
SMALL = {"projection_size": 32, "branch_layers": [32, 16], "embedding_size": 8}


def _model(model, dataset, config_dict, split=False):
    """Config, dataset and a freshly initialised model built on it.

    With ``split``, the dataset is the training split, as ``recbole_mm.run`` gives it to the model;
    else the whole (unsplit) dataset.
    """
    config = Config(model, dataset, config_dict=config_dict)
    init_seed(config["seed"], True)
    data = create_dataset(config)
    if split:
        data = data_preparation(config, data)[0]._dataset
    init_seed(config["seed"], True)
    return config, data, config.model_class(config, data)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _mlp_params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


# ------------------------------------------------------------------ (a) one shared branch
def test_branch_is_shared_and_model_is_smaller_than_two_towers(fast_config):
    config, data, model = _model("CoBraR", "ml-small", fast_config, split=True)  # YAML's sizes
    p, layers, d = config["projection_size"], config["branch_layers"], config["embedding_size"]
    n_users, n_items = data.user_num, data.item_num

    # exactly three parameterised parts: f_u, f_t and ONE branch g
    assert {name.split(".")[0] for name, _ in model.named_parameters()} == {
        "user_projection",
        "item_projection",
        "branch",
    }
    f_u, f_t, g = n_items * p + p, n_users * p + p, _mlp_params([p] + layers + [d])
    assert _n_params(model.user_projection) == f_u
    assert _n_params(model.item_projection) == f_t
    assert _n_params(model.branch) == g
    assert _n_params(model) == f_u + f_t + g
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 + len(layers) + 1  # no second branch hidden anywhere

    # users and items both go through the same branch module
    seen = []
    hook = model.branch.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    try:
        model.eval()
        with torch.no_grad():
            model.encode_users(torch.tensor([1, 2, 3]))
            model.encode_items(torch.tensor([1, 2]))
    finally:
        hook.remove()
    assert seen == [torch.Size([3, d]), torch.Size([2, d])]

    # and changing the branch changes both sides' embeddings
    with torch.no_grad():
        users_before = model.encode_users(torch.tensor([1, 2]))
        items_before = model.encode_items(torch.tensor([1, 2]))
        model.branch[0].bias.add_(0.5)
        assert not torch.allclose(model.encode_users(torch.tensor([1, 2])), users_before)
        assert not torch.allclose(model.encode_items(torch.tensor([1, 2])), items_before)

    # RecBole's DMF with the same sizes: two towers, bias-free projections
    dmf_config = dict(
        fast_config,
        user_embedding_size=p,
        item_embedding_size=p,
        user_hidden_size_list=layers + [d],
        item_hidden_size_list=layers + [d],
    )
    _, dmf_data, dmf = _model("DMF", "ml-small", dmf_config, split=True)
    assert isinstance(dmf, DMF) and (dmf_data.user_num, dmf_data.item_num) == (n_users, n_items)
    dmf_params = _n_params(dmf)
    assert dmf_params == n_items * p + n_users * p + 2 * g
    assert _n_params(model) < dmf_params
    assert dmf_params - _n_params(model) == g - 2 * p
    print(f"\nCoBraR {_n_params(model)} parameters, DMF (two towers) {dmf_params}")


# ------------------------------------------------------------------ (b) hand-computed scores
TINY_INTERACTIONS = [("a", "x", 5.0), ("a", "y", 3.0), ("b", "y", 4.0), ("c", "z", 1.0)]
# f_u: column of item token t; f_t: column of user token u (the [PAD] columns stay zero)
U_COLUMNS = {"x": [1.0, 0.0], "y": [0.0, 1.0], "z": [-1.0, -1.0]}
U_BIAS = [0.0, 0.0]
T_COLUMNS = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [-2.0, 1.0]}
T_BIAS = [0.5, 0.0]
A1, C1 = [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]
A2, C2 = [[1.0, -1.0], [0.5, 1.0]], [0.0, 0.0]
MU = 1e-4


@pytest.fixture
def tiny_config(tmp_path, workdir):
    folder = tmp_path / "tiny"
    folder.mkdir()
    rows = ["user_id:token\titem_id:token\trating:float"]
    rows += [f"{u}\t{i}\t{r}" for u, i, r in TINY_INTERACTIONS]
    (folder / "tiny.inter").write_text("\n".join(rows) + "\n")
    return {
        "data_path": str(tmp_path),
        "load_col": {"inter": ["user_id", "item_id", "rating"]},
        "state": "WARNING",
        "use_gpu": False,
        "projection_size": 2,
        "branch_layers": [2],
        "embedding_size": 2,
        "dropout_prob": 0.0,
        "min_score": MU,
    }


def _set_tiny_weights(model, data):
    uid = {u: int(data.token2id("user_id", u)) for u in T_COLUMNS}
    iid = {i: int(data.token2id("item_id", i)) for i in U_COLUMNS}
    with torch.no_grad():
        for linear, columns, bias, ids in (
            (model.user_projection, U_COLUMNS, U_BIAS, iid),
            (model.item_projection, T_COLUMNS, T_BIAS, uid),
        ):
            linear.weight.zero_()
            for token, column in columns.items():
                linear.weight[:, ids[token]] = torch.tensor(column)
            linear.bias.copy_(torch.tensor(bias))
        first, second = [m for m in model.branch if isinstance(m, torch.nn.Linear)]
        first.weight.copy_(torch.tensor(A1))
        first.bias.copy_(torch.tensor(C1))
        second.weight.copy_(torch.tensor(A2))
        second.bias.copy_(torch.tensor(C2))
    return uid, iid


def _hand_embedding(columns, bias, tokens, last_activation):
    """g(f(r)) in plain Python: f = sum of the interacted columns + bias, g = ReLU(A1 .) then A2."""
    z = [bias[k] + sum(columns[t][k] for t in tokens) for k in range(2)]
    h = [max(0.0, sum(A1[r][k] * z[k] for k in range(2)) + C1[r]) for r in range(2)]
    e = [sum(A2[r][k] * h[k] for k in range(2)) + C2[r] for r in range(2)]
    return [max(0.0, v) for v in e] if last_activation else e


def _hand_score(e_u, e_t):
    norm_u, norm_t = math.hypot(*e_u), math.hypot(*e_t)
    if norm_u == 0 or norm_t == 0:
        cosine = 0.0  # a zero embedding has no direction: score 0, then clamped to mu
    else:
        cosine = (e_u[0] * e_t[0] + e_u[1] * e_t[1]) / (norm_u * norm_t)
    return max(cosine, MU), cosine


@pytest.mark.parametrize("last_activation", [True, False])
def test_predict_and_loss_match_hand_computation(tiny_config, last_activation):
    _, data, model = _model("CoBraR", "tiny", dict(tiny_config, last_activation=last_activation))
    uid, iid = _set_tiny_weights(model, data)
    model.eval()

    items_of = {u: [i for uu, i, _ in TINY_INTERACTIONS if uu == u] for u in uid}
    users_of = {i: [u for u, ii, _ in TINY_INTERACTIONS if ii == i] for i in iid}
    pairs = [(u, i) for u in uid for i in iid]
    expected, raw = {}, {}
    for u, i in pairs:
        expected[u, i], raw[u, i] = _hand_score(
            _hand_embedding(U_COLUMNS, U_BIAS, items_of[u], last_activation),
            _hand_embedding(T_COLUMNS, T_BIAS, users_of[i], last_activation),
        )
    batch = Interaction(
        {
            "user_id": torch.tensor([uid[u] for u, _ in pairs]),
            "item_id": torch.tensor([iid[i] for _, i in pairs]),
        }
    )
    with torch.no_grad():
        got = model.predict(batch)
    assert got.tolist() == pytest.approx([expected[pair] for pair in pairs], abs=1e-6)

    # worked by hand: user a -> (0, 1.5), item x -> (1.5, 0.75), so cos = 1/sqrt(5) either way
    assert expected["a", "x"] == pytest.approx(1 / math.sqrt(5))
    if last_activation:
        # user c's embedding is ReLU(0, 0) = 0: its cosine is 0 and is clamped to mu
        assert all(expected["c", i] == MU for i in iid)
    else:
        # user b -> (-1, 1), item x -> (1.5, 0.75): negative cosine, clamped to mu
        assert raw["b", "x"] < 0 and expected["b", "x"] == MU
    assert any(value == MU for value in expected.values())

    # loss of a positive row (a, x) and a negative row (b, x): -ln y+ - ln(1 - y-)
    model.train()
    loss_batch = Interaction(
        {
            "user_id": torch.tensor([uid["a"], uid["b"]]),
            "item_id": torch.tensor([iid["x"], iid["x"]]),
            "label": torch.tensor([1.0, 0.0]),
        }
    )
    hand_loss = -math.log(expected["a", "x"]) - math.log(1 - expected["b", "x"])
    assert model.calculate_loss(loss_batch).item() == pytest.approx(hand_loss, rel=1e-5)


def test_dot_score_is_the_logistic_of_the_dot_product(tiny_config):
    _, data, model = _model("CoBraR", "tiny", dict(tiny_config, score="dot"))
    uid, iid = _set_tiny_weights(model, data)
    model.eval()
    users = torch.tensor([uid["a"], uid["b"]])
    batch = Interaction({"user_id": users, "item_id": torch.tensor([iid["x"], iid["x"]])})
    with torch.no_grad():
        got = model.predict(batch)
        full = model.full_sort_predict(Interaction({"user_id": users})).view(2, -1)
    # by hand: a -> (0, 1.5), b -> (-1, 1), x -> (1.5, 0.75): dots 1.125 and -0.75, not normalised
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert got.tolist() == pytest.approx([sigmoid(1.125), sigmoid(-0.75)], abs=1e-6)
    torch.testing.assert_close(full[:, iid["x"]], got)
    with pytest.raises(ValueError, match="score must be one of"):
        _model("CoBraR", "tiny", dict(tiny_config, score="euclid"))


def test_inputs_are_binary_or_ratings(tiny_config):
    for matrix_type, value_of in (("01", lambda r: 1.0), ("rating", lambda r: r)):
        _, data, model = _model("CoBraR", "tiny", dict(tiny_config, inter_matrix_type=matrix_type))
        uid = {u: int(data.token2id("user_id", u)) for u in "abc"}
        iid = {i: int(data.token2id("item_id", i)) for i in "xyz"}
        expected = np.zeros((data.user_num, data.item_num), dtype=np.float32)
        for u, i, r in TINY_INTERACTIONS:
            expected[uid[u], iid[i]] = value_of(r)
        users = model.interaction_rows("user", torch.arange(data.user_num)).numpy()
        items = model.interaction_rows("item", torch.arange(data.item_num)).numpy()
        np.testing.assert_array_equal(users, expected)
        np.testing.assert_array_equal(items, expected.T)


def test_projections_and_their_gradients_equal_the_dense_product(fast_config):
    """A batch that repeats ids (as pointwise sampling does) projects each once: outputs and the
    projection weights' gradients equal those of ``W r + b`` on the dense input rows."""
    _, data, model = _model("CoBraR", "ml-small", dict(fast_config, **SMALL))
    ids = {"user": torch.tensor([3, 7, 3, 3, 1, 7]), "item": torch.tensor([5, 5, 9, 2, 5, 11])}
    for side, linear in (("user", model.user_projection), ("item", model.item_projection)):
        sparse = model._project(side, ids[side])
        (sparse_grad,) = torch.autograd.grad((sparse * torch.arange(1.0, 7.0)[:, None]).sum(), linear.weight)
        dense = model.interaction_rows(side, ids[side]) @ linear.weight.t() + linear.bias
        (dense_grad,) = torch.autograd.grad((dense * torch.arange(1.0, 7.0)[:, None]).sum(), linear.weight)
        torch.testing.assert_close(sparse, dense)
        torch.testing.assert_close(sparse_grad, dense_grad)
        assert dense_grad.abs().sum() > 0

# ------------------------------------------------------------------ (c) full sort == predict
def test_full_sort_predict_equals_predict_for_every_pair(fast_config):
    _, data, model = _model("CoBraR", "ml-small", dict(fast_config, dropout_prob=0.5, **SMALL))
    model.eval()  # dropout off: scores must not depend on how pairs are batched
    n_users, n_items = data.user_num, data.item_num
    users = torch.arange(n_users)
    with torch.no_grad():
        full = model.full_sort_predict(Interaction({"user_id": users}))
        assert full.shape == (n_users * n_items,)
        assert model._eval_cache.shape == (n_items, SMALL["embedding_size"])
        # a second batch of users reuses the cached item embeddings and agrees with the first call
        again = model.full_sort_predict(Interaction({"user_id": users[5:9]}))
        pairs = model.predict(
            Interaction(
                {
                    "user_id": users.repeat_interleave(n_items),
                    "item_id": torch.arange(n_items).repeat(n_users),
                }
            )
        )
    full, pairs = full.view(n_users, n_items), pairs.view(n_users, n_items)
    torch.testing.assert_close(full, pairs, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(again.view(4, n_items), full[5:9])
    assert full.min() >= MU and full.max() <= 1.0 + 1e-6

    # training invalidates the cache, so evaluation never ranks with stale item embeddings
    model.train()
    assert model._eval_cache is None
    model.eval()
    with torch.no_grad():
        model.full_sort_predict(Interaction({"user_id": users[:2]}))
    assert model._eval_cache is not None
    batch = Interaction(
        {"user_id": users[1:3], "item_id": torch.tensor([1, 2]), "label": torch.tensor([1.0, 0.0])}
    )
    model.calculate_loss(batch)
    assert model._eval_cache is None


# ------------------------------------------------------------------ (d) end-to-end training
def test_trains_end_to_end_and_loss_decreases(fast_config, monkeypatch):
    losses = []
    train_epoch = Trainer._train_epoch

    def recording(self, *args, **kwargs):
        loss = train_epoch(self, *args, **kwargs)
        losses.append(float(loss))
        return loss

    monkeypatch.setattr(Trainer, "_train_epoch", recording)
    config = dict(fast_config, epochs=3, **SMALL)  # the default sizes take ~9 s an epoch on 2 cores
    result = run(model="CoBraR", dataset="ml-small", config_dict=config, saved=True)

    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0], losses
    test = result["test_result"]
    assert set(test) >= {"recall@10", "ndcg@10"}
    assert all(0.0 <= value <= 1.0 and not math.isnan(value) for value in test.values())
    assert result["checkpoint"] is not None
