"""Each compatibility fix, checked against an independent reference; each test fails without its fix."""

import contextlib
import io
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from recbole.config import Config as RecBoleConfig
from recbole.data import data_preparation
from recbole.model.abstract_recommender import AbstractRecommender

import recbole_mm
from recbole_mm import Config, compat, create_dataset, load_checkpoint, load_data_and_model, run
from recbole_mm.compat import checkpoint as safe_checkpoint

from conftest import REPO


def _build_model(model, fast_config, **settings):
    config = Config(model, "ml-small", config_dict=dict(fast_config, **settings))
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    return config.model_class(config, train_data._dataset), train_data._dataset


# ---------------------------------------------------------------- numpy 2 aliases
def test_numpy_aliases_need_no_removed_numpy_names(monkeypatch):
    # numpy 2 removed np.float_, np.complex_ and np.unicode_, which RecBole's patch reads
    for removed in ("float_", "complex_", "unicode_"):
        monkeypatch.delattr(np, removed, raising=False)
    for alias in ("float", "bool", "long", "int", "complex", "object", "str", "unicode"):
        monkeypatch.delattr(np, alias, raising=False)
    RecBoleConfig.compatibility_settings(None)
    assert np.float is np.float64 and np.bool is np.bool_ and np.long is np.int_


# ---------------------------------------------------------------- SciPy dok_matrix._update
def _dense_adjacency(dataset):
    """[[0, R], [R^T, 0]] from the training interactions, computed densely."""
    inter = dataset.inter_matrix(form="coo").astype(np.float64).toarray()
    inter = (inter > 0).astype(np.float64)
    n_users, n_items = inter.shape
    adjacency = np.zeros((n_users + n_items, n_users + n_items))
    adjacency[:n_users, n_users:] = inter
    adjacency[n_users:, :n_users] = inter.T
    return adjacency


def test_dok_update_is_restored():
    matrix = sp.dok_matrix((2, 3), dtype=np.float32)
    matrix._update({(0, 2): 1, (1, 0): 1})
    assert matrix.toarray().tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(IndexError):
        matrix._update({(5, 0): 1})


@pytest.mark.parametrize("model", ["LightGCN", "NGCF", "GCMC", "NCL"])
def test_normalised_adjacency_matches_dense(model, fast_config):
    built, dataset = _build_model(model, fast_config, num_clusters=10)
    adjacency = _dense_adjacency(dataset)
    degree = (adjacency > 0).sum(axis=1) + 1e-7
    expected = adjacency / np.sqrt(degree)[:, None] / np.sqrt(degree)[None, :]
    got = built.get_norm_adj_mat().to_dense().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_spectralcf_laplacian_matches_dense(fast_config):
    built, dataset = _build_model("SpectralCF", fast_config)
    adjacency = _dense_adjacency(dataset)
    degree = (adjacency > 0).sum(axis=1) + 1e-7
    expected = np.eye(len(adjacency)) - adjacency / degree[:, None]
    got = built.get_laplacian_matrix().to_dense().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- evaluation collector
def test_coverage_and_popularity_metrics_evaluate(fast_config):
    metrics = ["Recall", "ItemCoverage", "AveragePopularity", "GiniIndex", "TailPercentage"]
    result = run("BPR", "ml-small", config_dict=dict(fast_config, metrics=metrics, valid_metric="Recall@10"))
    test = result["test_result"]
    assert 0 < test["itemcoverage@10"] <= 1
    assert test["averagepopularity@10"] > 0


# ---------------------------------------------------------------- pandas copy-on-write
@pytest.fixture
def data_with_gaps(tmp_path):
    """Atomic files with an empty token_seq cell, a missing float and a missing token."""
    folder = tmp_path / "gaps"
    folder.mkdir()
    inter = ["user_id:token\titem_id:token"] + [f"{u}\t{i}" for u in range(1, 6) for i in range(1, 6)]
    (folder / "gaps.inter").write_text("\n".join(inter) + "\n")
    (folder / "gaps.item").write_text(
        "item_id:token\ttags:token_seq\tyear:float\tstudio:token\n"
        "1\trock pop\t1990\tA\n"
        "2\t\t2000\t\n"
        "3\tjazz\t\tB\n"
        "4\tpop\t2010\tA\n"
        "5\trock\t2020\tB\n"
    )
    return tmp_path


def test_missing_values_are_filled_under_copy_on_write(data_with_gaps, workdir):
    config = Config(
        "BPR",
        "gaps",
        config_dict={
            "data_path": str(data_with_gaps),
            "load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "tags", "year", "studio"]},
            "normalize_all": False,
            "state": "WARNING",
        },
    )
    # copy-on-write: pandas 3's only mode (its option is deprecated there), opt-in on pandas 2
    cow = pd.option_context("mode.copy_on_write", True) if pd.__version__ < "3" else contextlib.nullcontext()
    with cow:
        dataset = create_dataset(config)
    items = dataset.item_feat
    by_token = {dataset.id2token("item_id", i): row for i, row in zip(items["item_id"], items.itertuples())}
    assert by_token["3"].year == pytest.approx(2005.0)  # mean of 1990, 2000, 2010, 2020
    assert not np.isnan(items["year"].to_numpy(dtype=float)).any()
    assert len(by_token["2"].tags) == 0  # an empty tag list, not a crash on NaN.split
    assert len(by_token["1"].tags) == 2
    assert by_token["2"].studio == 0  # missing token -> [PAD]


def test_a_dataset_builds_without_pandas_warnings(data_with_gaps, workdir):
    """A user's process (not pytest's, which resets warning filters) sees none of the warnings of
    RecBole's dataset code under pandas 3 (see recbole_mm.compat.pandas_cow)."""
    script = textwrap.dedent(
        f"""
        import recbole_mm
        config = recbole_mm.Config("BPR", "gaps", config_dict={{
            "data_path": {str(data_with_gaps)!r}, "normalize_all": False, "state": "WARNING",
            "load_col": {{"inter": ["user_id", "item_id"], "item": ["item_id", "tags", "year", "studio"]}}}})
        recbole_mm.create_dataset(config).build()  # tables become tensors in build()
        """
    )
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], cwd=workdir,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for warning in ("chained assignment", "not writable", "inplace keyword"):  # the last: pandas >= 3.1
        assert warning not in done.stderr, done.stderr


# ---------------------------------------------------------------- sys.argv does not leak
def test_sys_argv_does_not_reach_config(monkeypatch, fast_config):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=999", "-q"])
    leaky = RecBoleConfig("BPR", "ml-small", config_dict=fast_config)
    ours = Config("BPR", "ml-small", config_dict=fast_config)
    assert leaky["epochs"] == 999  # RecBole's own Config reads the process's arguments
    assert ours["epochs"] == fast_config["epochs"]
    assert Config("BPR", "ml-small", config_dict=fast_config, cmd_args=["--epochs=7"])["epochs"] == 7


# ---------------------------------------------------------------- checkpoints
class _Payload:
    """Pickles as a call to ``func(*args)``: what a tampered checkpoint carries."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _tampered_checkpoint(path, source_checkpoint, payload):
    checkpoint = torch.load(source_checkpoint, weights_only=False)  # our own file, just written
    checkpoint["other_parameter"] = payload
    torch.save(checkpoint, path, pickle_protocol=4)
    return path


@pytest.fixture
def trained_bpr(fast_config):
    return run("BPR", "ml-small", config_dict=fast_config)


def test_checkpoint_round_trip_gives_the_same_scores(trained_bpr):
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(
        trained_bpr["checkpoint"]
    )
    assert isinstance(config, Config) and config["model"] == "BPR"
    assert config.model_class.__name__ == "BPR"
    state = torch.load(trained_bpr["checkpoint"], weights_only=False)["state_dict"]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[name])


def test_recbole_1_2_1_checkpoint_with_class_references_loads(fast_config, monkeypatch, workdir):
    # stock RecBole pickles Config with the model class and yaml's FullLoader inside
    monkeypatch.delattr(RecBoleConfig, "__getstate__")
    monkeypatch.delattr(RecBoleConfig, "__setstate__")
    result = run("LightGCN", "ml-small", config_dict=fast_config)
    monkeypatch.undo()
    config, checkpoint = load_checkpoint(result["checkpoint"])
    assert config.model_class.__name__ == "LightGCN"
    assert "user_embedding.weight" in checkpoint["state_dict"]


@pytest.mark.parametrize(
    "payload",
    [
        _Payload(os.system, "touch pwned"),
        _Payload(eval, "__import__('os').system('touch pwned')"),
        # Config(...) eval-s string values of its config_dict
        _Payload(RecBoleConfig, "BPR", "ml-small", None, {"x": "__import__('os').system('touch pwned')"}),
    ],
    ids=["os.system", "eval", "Config-call"],
)
def test_tampered_checkpoint_is_refused(trained_bpr, payload, workdir):
    tampered = _tampered_checkpoint(workdir / "tampered.pth", trained_bpr["checkpoint"], payload)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tampered)
    with pytest.raises(pickle.UnpicklingError):  # RecBole's own loading path (load_best_model)
        safe_checkpoint.load(tampered)
    assert not (workdir / "pwned").exists()


def test_setting_attributes_of_an_allowed_class_is_refused():
    # GLOBAL yaml.loader.FullLoader (read as UnresolvedClass), then BUILD with slot state {"x": 1}:
    # plain pickle would run setattr(UnresolvedClass, "x", 1)
    raw = b"cyaml.loader\nFullLoader\n(N}X\x01\x00\x00\x00xK\x01stb."
    unpickler = safe_checkpoint._restricted_pickle_module(safe_checkpoint.allowed_globals()).Unpickler
    with pytest.raises(pickle.UnpicklingError):
        unpickler(io.BytesIO(raw)).load()
    assert not hasattr(safe_checkpoint.UnresolvedClass, "x")


def test_trainer_loads_best_checkpoint_through_the_allow_list(fast_config):
    import recbole.trainer.trainer as trainer_module

    assert trainer_module.torch.load is safe_checkpoint.load
    result = run("BPR", "ml-small", config_dict=fast_config, saved=True)
    assert result["test_result"]


def test_model_keeping_a_module_in_other_parameter_reloads_its_best_checkpoint(fast_config):
    # DIN lists its feature embedding layer (an nn.Module) in other_parameter_name
    settings = {k: v for k, v in fast_config.items() if k != "eval_args"}  # DIN's own: uni100
    settings.update(load_col={"inter": ["user_id", "item_id", "timestamp"]}, MAX_ITEM_LIST_LENGTH=10)
    result = run("DIN", "ml-small", config_dict=settings, saved=True)
    assert set(result["test_result"]) == {"auc", "logloss"}  # RecBole's defaults for DIN
    config, model, *_ = load_data_and_model(result["checkpoint"])
    state = torch.load(result["checkpoint"], weights_only=False)["state_dict"]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[name])


# ---------------------------------------------------------------- applied once, idempotently
def _patched_objects():
    import recbole.data.dataset.dataset as dataset_module
    import recbole.trainer.trainer as trainer_module
    from recbole.evaluator.collector import Collector

    return (
        Collector.get_data_struct,
        dataset_module.pd,
        dataset_module.Dataset._fill_nan,
        dataset_module.Dataset.__init__,
        trainer_module.torch,
        RecBoleConfig.compatibility_settings,
        AbstractRecommender.other_parameter,
        sp.dok_matrix._update,
    )


def test_apply_is_idempotent():
    before = _patched_objects()
    compat.apply()
    for fix in compat._FIXES:  # even each fix applied again on its own
        fix.apply()
    assert _patched_objects() == before


# ---------------------------------------------------------------- no Ray
def test_trains_without_ray(small_data, workdir):
    """The GPU machine has no Ray: recbole_mm must import and train with Ray missing."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["ray"] = None  # any 'import ray' now raises ImportError
        import recbole_mm
        result = recbole_mm.run("LightGCN", "ml-small", config_dict={{
            "data_path": {str(small_data)!r}, "epochs": 1, "state": "WARNING", "use_gpu": False,
            "checkpoint_dir": "saved"}})
        assert result["test_result"]["recall@10"] >= 0
        assert sys.modules["ray"] is None
        print("trained without ray")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests"))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained without ray" in done.stdout
    assert recbole_mm.__version__


def test_gpu_checkpoint_loads_on_a_cpu_machine(trained_bpr, workdir):
    checkpoint = torch.load(trained_bpr["checkpoint"], weights_only=False)
    checkpoint["config"].final_config_dict["device"] = torch.device("cuda:0")
    path = workdir / "from_gpu.pth"
    torch.save(checkpoint, path, pickle_protocol=4)
    config, model, *_ = load_data_and_model(path)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert config["device"].type == expected and next(model.parameters()).device.type == expected
