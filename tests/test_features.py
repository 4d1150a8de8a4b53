"""The feature store, its alignment to RecBole ids, text extraction and matrix import."""

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import InputType

from recbole_mm import Config, create_dataset
from recbole_mm.cli import main
from recbole_mm.data.features import FeatureError, FeatureStore
from recbole_mm.dataset_tools import extract
from recbole_mm.dataset_tools.atomic import write_atomic, write_text_table
from recbole_mm.dataset_tools.extract import ExtractionError, import_matrix
from recbole_mm.model import MultimodalRecommender

from conftest import SHARED_DATASETS

LASTFM = SHARED_DATASETS / "lastfm-2k"


# ---------------------------------------------------------------- the store
def test_store_round_trip_and_alignment(tmp_path):
    store = FeatureStore(tmp_path / "features")
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    store.write("demo", ["a", "b", "c", "zz"], matrix, modality="text")
    tokens, stored = store.read("demo")
    assert tokens == ["a", "b", "c", "zz"] and np.array_equal(stored, matrix)
    assert isinstance(stored, np.memmap)

    token2id = {"[PAD]": 0, "c": 1, "a": 2, "d": 3}  # "b" and "zz" were filtered out of the dataset
    features, mask = store.aligned("demo", token2id, n_items=4)
    assert mask.tolist() == [False, True, True, False]
    assert torch.equal(features[1], torch.tensor(matrix[2])) and torch.equal(features[2], torch.tensor(matrix[0]))
    assert features[0].abs().sum() == 0 and features[3].abs().sum() == 0
    filled, _ = store.aligned("demo", token2id, n_items=4, fill="mean")
    assert torch.allclose(filled[3], torch.tensor((matrix[0] + matrix[2]) / 2))
    assert filled[0].abs().sum() == 0  # padding stays zero


@pytest.mark.parametrize(
    "tokens, matrix, message",
    [
        (["a", "b"], np.array([[1.0, 2.0], [np.nan, 0.0]]), "row 1"),
        (["a", "a"], np.ones((2, 2)), "appears twice"),
        (["a"], np.ones((2, 2)), "2 rows but 1 item tokens"),
        (["a", "b"], np.ones(2), "2-d"),
    ],
)
def test_store_refuses_bad_matrices_and_writes_nothing(tmp_path, tokens, matrix, message):
    store = FeatureStore(tmp_path / "features")
    with pytest.raises(FeatureError, match=message):
        store.write("bad", tokens, matrix)
    assert store.names() == [] and not any(tmp_path.rglob("bad*"))


def test_missing_feature_set_names_the_files(tmp_path):
    with pytest.raises(FeatureError, match="text.npy, text.tokens"):
        FeatureStore(tmp_path / "features").read("text")


def test_hand_edited_files_are_detected(tmp_path):
    store = FeatureStore(tmp_path / "features")
    store.write("v", ["a", "b"], np.ones((2, 2)))
    (tmp_path / "features" / "v.tokens").write_text("a\n")
    with pytest.raises(FeatureError, match="changed by hand"):
        store.read("v")


# ---------------------------------------------------------------- models get aligned tensors
class _FeatureProbe(MultimodalRecommender):
    """A model that only exposes what the base class loads (used to test the base class)."""

    input_type = InputType.PAIRWISE

    def calculate_loss(self, interaction):
        return torch.zeros(())


def test_multimodal_base_class_gets_aligned_features(small_data, fast_config):
    folder = small_data / "ml-small"
    items = sorted({line.split("\t")[1] for line in (folder / "ml-small.inter").read_text().splitlines()[1:]}, key=int)
    with_features = items[::2]
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(len(with_features), 5)).astype(np.float32)
    store = FeatureStore(small_data / "probe_features")
    store.write("rand", with_features, matrix)

    config = Config(
        _FeatureProbe, "ml-small",
        config_dict=dict(fast_config, modalities=["rand"], feature_path=str(store.root)),
    )
    dataset = create_dataset(config)
    train = data_preparation(config, dataset)[0]._dataset
    model = _FeatureProbe(config, train)
    features, mask = model.item_features["rand"], model.item_feature_masks["rand"]
    assert features.shape == (train.item_num, 5) and mask.shape == (train.item_num,)
    for row, token in enumerate(with_features):
        internal = train.token2id(train.iid_field, token)
        assert mask[internal] and torch.allclose(features[internal], torch.tensor(matrix[row]))
    assert int(mask.sum()) == len(with_features) and not mask[0]

    missing = Config(
        _FeatureProbe, "ml-small",
        config_dict=dict(fast_config, modalities=["nope"], feature_path=str(store.root)),
    )
    with pytest.raises(FeatureError, match="nope.npy"):
        _FeatureProbe(missing, train)


def test_recbole_float_seq_field_route(tmp_path, workdir):
    """``modalities: [field:emb]`` reads a float_seq column of the .item file; empty = missing."""
    folder = tmp_path / "fs"
    folder.mkdir()
    pairs = [(u, i) for u in range(1, 9) for i in range(1, 6) if (u + i) % 3]  # nobody has every item
    inter = ["user_id:token\titem_id:token"] + [f"{u}\t{i}" for u, i in pairs]
    (folder / "fs.inter").write_text("\n".join(inter) + "\n")
    vectors = {"1": [0.5, 1.0], "2": [2.0, -1.0], "3": [0.0, 3.0]}
    rows = [f"{i}\t{' '.join(map(str, v))}" for i, v in vectors.items()] + ["4\t"]
    (folder / "fs.item").write_text("item_id:token\temb:float_seq\n" + "\n".join(rows) + "\n")
    config = Config(_FeatureProbe, "fs", config_dict={
        "data_path": str(tmp_path), "modalities": ["field:emb"], "normalize_all": False,
        "load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "emb"]},
        "state": "WARNING", "use_gpu": False})
    train = data_preparation(config, create_dataset(config))[0]._dataset
    model = _FeatureProbe(config, train)
    features, mask = model.item_features["field:emb"], model.item_feature_masks["field:emb"]
    for token, vector in vectors.items():
        internal = train.token2id(train.iid_field, token)
        assert mask[internal] and torch.allclose(features[internal], torch.tensor(vector))
    assert not mask[train.token2id(train.iid_field, "4")]  # an empty cell is a missing feature
    assert not mask[0]


# ---------------------------------------------------------------- lastfm-2k: real features
@pytest.fixture(scope="module")
def lastfm_items(tmp_path_factory):
    """A dataset folder with the lastfm-2k items (tokens = MMRec item ids) and their tag text."""
    if not (LASTFM / "mmrec" / "all-MiniLM-L6-v2.npy").is_file():
        pytest.skip(f"lastfm-2k is not in {SHARED_DATASETS} (set RECBOLE_MM_SHARED_DATASETS)")
    inter = pd.read_csv(LASTFM / "mmrec" / "lfm2k.inter", sep="\t")
    original = pd.read_csv(LASTFM / "mmrec" / "lfm2k_og_ids.inter", sep="\t")
    artist_of = dict(zip(inter["itemID"], original["itemID"]))  # rows are aligned
    tags = pd.read_csv(LASTFM / "lfm2k_text.tsv", sep="\t")
    text_of = dict(zip(tags["artistID"], tags["text"]))
    data_path = tmp_path_factory.mktemp("lastfm")
    folder = data_path / "lfm"
    folder.mkdir()
    frame = inter.rename(columns={"userID": "user_id", "itemID": "item_id"})[["user_id", "item_id"]]
    write_atomic(folder / "lfm.inter", frame.astype(str), {"user_id": "token", "item_id": "token"})
    items = sorted(artist_of)
    text = pd.DataFrame({"item_id": [str(i) for i in items], "tags": [text_of[artist_of[i]] for i in items]})
    write_text_table(folder / "lfm.text.tsv", text)
    return data_path


def test_minilm_tag_features_reproduce_the_published_ones(lastfm_items, monkeypatch):
    calls = []
    real_encode = extract.encode_resumably

    def interrupted(encoder, tokens, texts, work_dir, shard_size):
        original = encoder.encode

        def encode(batch):
            calls.append(len(batch))
            if len(calls) == 2:
                raise KeyboardInterrupt  # the first run dies after one finished shard
            return original(batch)

        encoder.encode = encode
        return real_encode(encoder, tokens, texts, work_dir, shard_size)

    monkeypatch.setattr(extract, "encode_resumably", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract.extract_text(lastfm_items, "lfm", ["tags"], "all-MiniLM-L6-v2", name="tags", shard_size=1000)
    assert FeatureStore.of_dataset(lastfm_items, "lfm").names() == []  # nothing half-written
    calls.clear()
    extract.extract_text(lastfm_items, "lfm", ["tags"], "all-MiniLM-L6-v2", name="tags", shard_size=1000)
    assert calls == [425]  # the finished shard of 1000 items was reused

    tokens, ours = FeatureStore.of_dataset(lastfm_items, "lfm").read("tags")
    published = np.load(LASTFM / "mmrec" / "all-MiniLM-L6-v2.npy")[[int(t) for t in tokens]]
    cosine = (ours * published).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(published, axis=1)
    assert len(tokens) == 1425 and cosine.min() > 0.999


def test_import_mmrec_matrix_by_row_index(lastfm_items, capsys):
    status = main([
        "extract", "--data-path", str(lastfm_items), "--dataset", "lfm", "--modality", "audio",
        "--name", "vggish", "--import-npy", str(LASTFM / "mmrec" / "vggish.npy"), "--row-index",
    ])
    assert status == 0 and "1425 items x 128" in capsys.readouterr().out
    tokens, matrix = FeatureStore.of_dataset(lastfm_items, "lfm").read("vggish")
    published = np.load(LASTFM / "mmrec" / "vggish.npy")
    assert tokens[7] == "7" and np.allclose(matrix[7], published[7].astype(np.float32))


def test_import_refuses_rows_of_unknown_items(lastfm_items, tmp_path):
    matrix = tmp_path / "m.npy"
    np.save(matrix, np.ones((3, 4), dtype=np.float32))
    tokens = tmp_path / "m.tokens"
    tokens.write_text("0\n1\nno-such-artist\n")
    with pytest.raises(ExtractionError, match="row 2: item 'no-such-artist'"):
        import_matrix(lastfm_items, "lfm", "bad", matrix, "image", tokens_path=tokens)
    tokens.write_text("0\n1\n")
    with pytest.raises(ExtractionError, match="2 tokens but .* 3 rows"):
        import_matrix(lastfm_items, "lfm", "bad", matrix, "image", tokens_path=tokens)
    assert "bad" not in FeatureStore.of_dataset(lastfm_items, "lfm").names()


def test_unknown_text_field_lists_the_available_ones(lastfm_items):
    with pytest.raises(ExtractionError, match="available: tags"):
        extract.item_texts(lastfm_items / "lfm", ["title"])
