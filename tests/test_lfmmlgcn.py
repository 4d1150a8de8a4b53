"""LF-MMLGCN, EF-MMLGCN, MMLGCN and their layers, checked against hand and dense re-computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from recbole.data import data_preparation

from recbole_mm import Config, create_dataset, load_data_and_model, run
from recbole_mm.data.features import FeatureStore
from recbole_mm.layers.fusion import Fusion, ModalityProjection


# ---------------------------------------------------------------- fusion layers
def _inputs():
    inputs = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]], [[9.0, 0.0], [1.0, 1.0]]])
    mask = torch.tensor([[True, True], [True, False], [False, True]])  # item 0 lacks input 2, item 1 input 1
    return inputs, mask


@pytest.mark.parametrize(
    "method, expected",
    [
        ("mean", [[3.0, 4.0], [2.0, 2.5]]),
        ("sum", [[6.0, 8.0], [4.0, 5.0]]),
        ("max", [[5.0, 6.0], [3.0, 4.0]]),
        ("attention", [[3.0, 4.0], [2.0, 2.5]]),  # the gate starts as the plain mean
    ],
)
def test_fusion_leaves_missing_inputs_out(method, expected):
    inputs, mask = _inputs()
    fused = Fusion(method, 3, 2)(inputs, mask)
    torch.testing.assert_close(fused, torch.tensor(expected))


@pytest.mark.parametrize("method", ["mean", "sum", "max", "concat", "attention"])
def test_fusion_of_no_inputs_is_zero_with_finite_gradients(method):
    inputs = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.tensor([[True, False, False], [False, False, True]])  # item 1 has nothing
    fused = Fusion(method, 2, 4)(inputs, mask)
    assert torch.equal(fused[1], torch.zeros(4)) or method == "concat"
    fused.sum().backward()
    assert torch.isfinite(inputs.grad).all()


def test_concat_fusion_sees_absent_inputs_as_zeros():
    inputs, mask = _inputs()
    fusion = Fusion("concat", 3, 2)
    expected = fusion.linear(torch.tensor([[1.0, 2, 5, 6, 0, 0], [3, 4, 0, 0, 1, 1]]))
    torch.testing.assert_close(fusion(inputs, mask), expected)


def test_projection_modes():
    features = torch.randn(5, 7)
    frozen = ModalityProjection(features, 3, "frozen")
    assert not any(p.requires_grad for p in frozen.parameters())
    trainable = ModalityProjection(features, 3, "trainable")
    torch.testing.assert_close(trainable(), F.normalize(features, dim=-1) @ trainable.linear.weight.T)
    trainable().sum().backward()
    assert trainable.linear.weight.grad is not None
    unfrozen = ModalityProjection(features, 3, "unfrozen")
    assert [tuple(p.shape) for p in unfrozen.parameters()] == [(5, 3)]
    with pytest.raises(ValueError, match="projection"):
        ModalityProjection(features, 3, "sideways")


# ---------------------------------------------------------------- the model on real interactions
# (feature_path: conftest's random features for every other ml-small item)
def _built(fast_config, feature_path, model="LFMMLGCN", **settings):
    config = Config(model, "ml-small", config_dict=dict(
        fast_config, modalities=["rand"], feature_path=feature_path, embedding_size=8, **settings))
    train = data_preparation(config, create_dataset(config))[0]._dataset
    return config.model_class(config, train).eval(), train


def _dense_lightgcn(train, users, items):
    """Mean of layers 0..2 of D^-1/2 A D^-1/2 applied to [users; items], computed densely."""
    inter = (train.inter_matrix(form="coo").toarray() > 0).astype(np.float64)
    n_users, n_items = inter.shape
    adjacency = np.zeros((n_users + n_items,) * 2)
    adjacency[:n_users, n_users:], adjacency[n_users:, :n_users] = inter, inter.T
    degree = np.maximum(adjacency.sum(1), 1e-12)
    norm = adjacency / np.sqrt(degree)[:, None] / np.sqrt(degree)[None, :]
    ego = torch.cat([users, items]).detach().double().numpy()
    return np.mean([ego, norm @ ego, norm @ norm @ ego], axis=0), n_users


def test_item_embeddings_are_lightgcn_fused_with_the_projection(fast_config, feature_path):
    model, train = _built(fast_config, feature_path, n_layers=2)
    lightgcn, n_users = _dense_lightgcn(train, model.user_embedding.weight, model.item_embedding.weight)
    users, items = model.forward()
    np.testing.assert_allclose(users.detach().numpy(), lightgcn[:n_users], rtol=1e-4, atol=1e-5)
    collaborative = lightgcn[n_users:]
    projected = model.projections[0]().detach().numpy()
    has = model.item_feature_masks["rand"].numpy()
    expected = np.where(has[:, None], (collaborative + projected) / 2, collaborative)
    np.testing.assert_allclose(items.detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_early_fusion_concatenates_and_projects(fast_config, feature_path):
    model, train = _built(fast_config, feature_path, model="EFMMLGCN", n_layers=2)
    lightgcn, n_users = _dense_lightgcn(train, model.user_embedding.weight, model.item_embedding.weight)
    has = model.item_feature_masks["rand"].unsqueeze(-1)
    modality = torch.where(has, model.projections[0](), torch.zeros(()))  # one modality: fused = itself
    expected = model.output(torch.cat([torch.tensor(lightgcn[n_users:], dtype=torch.float32), modality], -1))
    torch.testing.assert_close(model.forward()[1], expected, rtol=1e-4, atol=1e-5)


def test_one_lightgcn_per_modality_fused(fast_config, feature_path):
    model, train = _built(fast_config, feature_path, model="MMLGCN", n_layers=2)
    ids, n_users = _dense_lightgcn(train, model.user_embedding.weight, model.item_embedding.weight)
    text, _ = _dense_lightgcn(train, model.modality_user_embeddings[0].weight, model.projections[0]())
    users, items = model.forward()
    np.testing.assert_allclose(users.detach().numpy(), (ids[:n_users] + text[:n_users]) / 2, rtol=1e-4, atol=1e-5)
    has = model.item_feature_masks["rand"].numpy()[:, None]
    expected = np.where(has, (ids[n_users:] + text[n_users:]) / 2, ids[n_users:])
    np.testing.assert_allclose(items.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    assert model.projections[0].table.requires_grad  # unfrozen: the modality item table is learned


@pytest.mark.parametrize("weighting", ["alpha", "normalized", "equal"])
def test_weightings(fast_config, feature_path, weighting):
    model, _ = _built(fast_config, feature_path, n_layers=0, weighting=weighting)
    collaborative = model.item_embedding.weight.detach()
    projected = model.projections[0]().detach()
    has = model.item_feature_masks["rand"].unsqueeze(-1)
    if weighting == "alpha":  # sigmoid(0) = 1/2 at the start
        expected = torch.where(has, (0.5 * collaborative + 0.5 * projected) / 2, 0.5 * collaborative)
    elif weighting == "normalized":
        unit = F.normalize(collaborative, dim=-1)
        expected = torch.where(has, (unit + projected) / 2, unit)
    else:  # equal: an item without features keeps its collaborative embedding
        expected = torch.where(has, 0.5 * collaborative + 0.5 * projected, collaborative)
    torch.testing.assert_close(model.forward()[1].detach(), expected)


def test_full_sort_matches_pairwise_scores(fast_config, feature_path):
    model, train = _built(fast_config, feature_path, fusion="attention", projection="trainable")
    from recbole.data.interaction import Interaction

    users = torch.tensor([1, 2, 3])
    full = model.full_sort_predict(Interaction({"user_id": users})).view(3, -1)
    items = torch.arange(train.item_num)
    pairs = Interaction({"user_id": users.repeat_interleave(len(items)), "item_id": items.repeat(3)})
    torch.testing.assert_close(full, model.predict(pairs).view(3, -1))


def test_evaluation_cache_never_serves_stale_embeddings(fast_config, feature_path):
    """Kept while evaluating; new weights (loaded in eval mode, or a training step) recompute it."""
    model, _ = _built(fast_config, feature_path)
    first = model.final_embeddings()
    assert model.final_embeddings() is first  # eval mode: computed once
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["item_embedding.weight"] += 1.0
    model.load_state_dict(state)  # still in eval mode
    reloaded = model.final_embeddings()
    torch.testing.assert_close(reloaded[1], model.train().forward()[1].detach())
    assert not torch.equal(reloaded[1], first[1])


@pytest.mark.parametrize("model, options", [
    ("LFMMLGCN", {"projection": "frozen", "fusion": "mean"}),
    ("LFMMLGCN", {"projection": "unfrozen", "fusion": "concat", "weighting": "alpha"}),
    ("EFMMLGCN", {"fusion": "attention"}),
    ("MMLGCN", {"fusion": "max"}),
])
def test_trains_and_reloads(fast_config, feature_path, model, options):
    result = run(model, "ml-small", config_dict=dict(
        fast_config, modalities=["rand"], feature_path=feature_path, embedding_size=8, epochs=2, **options))
    assert result["test_result"]["ndcg@10"] > 0
    config, loaded, _, _, _, test_data = load_data_and_model(result["checkpoint"])
    assert type(loaded).__name__ == model
    state = torch.load(result["checkpoint"], weights_only=False)["state_dict"]
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, state[name])


def test_missing_modalities_is_a_clear_error(fast_config, feature_path):
    with pytest.raises(ValueError, match="needs item features.*has none"):
        run("LFMMLGCN", "ml-small", config_dict=fast_config)
    with pytest.raises(ValueError, match="needs item features.*these: --modalities=rand\\)"):
        run("LFMMLGCN", "ml-small", config_dict=dict(fast_config, feature_path=feature_path))


def test_bundled_ml100k_gets_text_features_on_first_use(workdir):
    """`run_recbole --model=LFMMLGCN --dataset=ml-100k` on a fresh install: features made, then reused."""
    cache = workdir / "cache" / "features"
    settings = {"epochs": 1, "state": "WARNING", "use_gpu": False, "feature_path": str(cache),
                "checkpoint_dir": str(workdir / "saved")}
    result = run("LFMMLGCN", "ml-100k", config_dict=settings)
    assert result["test_result"]["ndcg@10"] > 0
    info = FeatureStore(cache).manifest()["text"]
    assert (info["rows"], info["dim"]) == (1682, 384) and info["fields"] == ["movie_title", "release_year", "class"]
    written = (cache / "text.npy").stat().st_mtime_ns
    run("LFMMLGCN", "ml-100k", config_dict=settings)
    assert (cache / "text.npy").stat().st_mtime_ns == written  # the cached features were reused
