"""Loading item features: recbole_mm's feature store vs RecBole's ``float_seq`` route.

Writes one synthetic dataset (random interactions, ``--items`` items with ``--dim``-d float32
features) both ways, then times, in this process and on this machine:

- RecBole: building the dataset and its splits with the features as an ``emb:float_seq`` column
  of the ``.item`` file (RecBole parses every cell in Python), then reading them as a tensor;
- recbole_mm: building the dataset and its splits without them, then ``FeatureStore.aligned``
  (memory-mapped ``.npy`` + item tokens -> [n_items, dim] aligned to internal ids, with a mask).

Both produce the same matrix (checked). Prints seconds for each and the ratio.

    python benchmarks/feature_store.py --items 100000 --dim 1024
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from recbole.data import data_preparation

import recbole_mm
from recbole_mm.data.features import FeatureStore
from recbole_mm.record import describe_device


def write_dataset(root, name, items, dim, users, inters, seed):
    """Synthetic ``name`` under ``root``: .inter, .item with emb:float_seq, and the store."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True)
    user_ids = rng.integers(1, users + 1, inters)
    item_ids = rng.integers(1, items + 1, inters)
    with open(folder / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\n")
        f.writelines(f"{u}\t{i}\n" for u, i in zip(user_ids, item_ids))
    features = rng.normal(size=(items, dim)).astype(np.float32)
    tokens = [str(i) for i in range(1, items + 1)]
    with open(folder / f"{name}.item", "w") as f:
        f.write("item_id:token\temb:float_seq\n")
        for token, row in zip(tokens, features):
            f.write(token + "\t" + " ".join(map(repr, row.tolist())) + "\n")
    FeatureStore(folder / "features").write("emb", tokens, features)
    return folder


def config(name, root, with_item_file):
    load_col = {"inter": ["user_id", "item_id"]}
    if with_item_file:
        load_col["item"] = ["item_id", "emb"]
    return recbole_mm.Config(
        "BPR", name,
        config_dict={"data_path": str(root), "load_col": load_col, "normalize_all": False,
                     "state": "WARNING", "use_gpu": False},
    )


def prepared(cfg):
    """The training split as a model receives it (features converted to tensors)."""
    return data_preparation(cfg, recbole_mm.create_dataset(cfg))[0]._dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--inters", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root, "synthetic", args.items, args.dim, args.users, args.inters, args.seed)

        start = time.perf_counter()
        dataset = prepared(config("synthetic", root, with_item_file=True))
        theirs = dataset.get_item_feature()["emb"].float()
        recbole_seconds = time.perf_counter() - start

        start = time.perf_counter()
        dataset_ours = prepared(config("synthetic", root, with_item_file=False))
        build_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ours, mask = FeatureStore(root / "synthetic" / "features").aligned(
            "emb", dataset_ours.field2token_id["item_id"], dataset_ours.item_num
        )
        store_seconds = time.perf_counter() - start

    # same items, same vectors (RecBole pads with row 0; both index by internal id)
    id_map = [dataset.token2id("item_id", dataset_ours.id2token("item_id", i)) for i in range(1, dataset_ours.item_num)]
    assert torch.allclose(ours[1:], theirs[id_map], atol=1e-6), "the two routes disagree"
    assert bool(mask[1:].all())

    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"device: {describe_device('cpu')}; seed {args.seed}")
    print(f"data: {args.items} items x {args.dim} float32, {args.inters} interactions")
    float_seq_seconds = recbole_seconds - build_seconds  # what the float_seq column adds
    print(f"RecBole, dataset with emb:float_seq in .item:  {recbole_seconds:8.2f} s")
    print(f"recbole_mm, dataset without features:          {build_seconds:8.2f} s")
    print(f"  -> loading the features via float_seq:       {float_seq_seconds:8.2f} s")
    print(f"  -> loading the features via the store:       {store_seconds:8.2f} s")
    print(f"feature loading, float_seq / store:            {float_seq_seconds / store_seconds:8.1f}x")
    print(f"dataset with features, RecBole / recbole_mm:   {recbole_seconds / (build_seconds + store_seconds):8.1f}x")


if __name__ == "__main__":
    main()
