"""Shared fixtures: small real data (a slice of RecBole's bundled MovieLens-100K) and fast configs."""

import os
from pathlib import Path

import numpy as np
import pytest
import recbole

import recbole_mm  # noqa: F401  (applies the compatibility fixes before any test)
from recbole_mm.data.features import FeatureStore

REPO = Path(__file__).resolve().parents[1]
ML100K = Path(recbole.__file__).parent / "dataset_example" / "ml-100k"
# ../shared/datasets beside the repository, or wherever RECBOLE_MM_SHARED_DATASETS points
SHARED_DATASETS = Path(os.environ.get("RECBOLE_MM_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
# RECBOLE_MM_TEST_DEVICE=cuda: the models of ``fast_config`` tests train on the GPU (benchmarks/gpu_kit.py)
TEST_ON_GPU = os.environ.get("RECBOLE_MM_TEST_DEVICE", "cpu").startswith("cuda")
SMALL_USERS = 120  # users 1..120 of ml-100k: ~13k real interactions, every general model trains fast


def write_ml100k_slice(data_path, name="ml-small", max_user=SMALL_USERS):
    """Write the interactions of ml-100k users 1..max_user as atomic dataset ``name``; returns dir."""
    source = (ML100K / "ml-100k.inter").read_text().splitlines()
    header, rows = source[0], source[1:]
    kept = [row for row in rows if int(row.split("\t", 1)[0]) <= max_user]
    folder = Path(data_path) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text("\n".join([header] + kept) + "\n")
    return folder


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """data_path holding ``ml-small``: the real interactions of 120 ml-100k users."""
    data_path = tmp_path_factory.mktemp("data")
    write_ml100k_slice(data_path)
    return data_path


@pytest.fixture(scope="session")
def feature_path(small_data):
    """A feature store for ``ml-small``: random 6-d features ``rand`` for every other item (the
    rest have none)."""
    lines = (small_data / "ml-small" / "ml-small.inter").read_text().splitlines()[1:]
    items = sorted({line.split("\t")[1] for line in lines}, key=int)[::2]
    store = FeatureStore(small_data / "lfm_features")
    store.write("rand", items, np.random.default_rng(1).normal(size=(len(items), 6)))
    return str(store.root)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a fresh folder: RecBole writes ./log and ./log_tensorboard relative to the cwd."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fast_config(small_data, workdir):
    """A config dict for one quick epoch on ``ml-small``."""
    return {
        "data_path": str(small_data),
        "checkpoint_dir": str(workdir / "saved"),
        "epochs": 1,
        "train_batch_size": 512,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
        "state": "WARNING",
        "use_gpu": TEST_ON_GPU,
    }
