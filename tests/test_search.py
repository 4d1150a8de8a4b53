"""Search data, search evaluation, UnifiedSearchRec and `recbole-mm search` / `recommend`."""

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from recbole_mm.cli import main
from recbole_mm.config import Config
from recbole_mm.dataset_tools.extract import extract_text
from recbole_mm.plugins.unifiedsearchrec import UnifiedSearchRec
from recbole_mm.quick_start import _build, load_data, run
from recbole_mm.search.data import (
    SearchError,
    ensure_search_file,
    queries_from_items,
    read_search_file,
    write_search_file,
)
from recbole_mm.search.evaluation import SearchEvaluator

from conftest import ML100K, SHARED_DATASETS, write_ml100k_slice


# ---------------------------------------------------------------- the .search file
def test_search_file_round_trip_and_errors(tmp_path):
    frame = pd.DataFrame(
        {"user_id": ["1", "2"], "query": ["Comedy  Romance", "drama\tfilm"], "item_id": ["5", "7"],
         "timestamp": [10.0, 11.5]}
    )
    path = write_search_file(tmp_path / "d.search", frame)
    back = read_search_file(path)
    assert back["query"].tolist() == ["comedy romance", "drama film"]  # one line, lower case
    assert back["timestamp"].tolist() == [10.0, 11.5]

    bad = tmp_path / "bad.search"
    bad.write_text("user_id:token\tquery:text\titem_id:token\n1\tcomedy\t5\n2\t\t7\n")
    with pytest.raises(SearchError, match=r"bad.search, line 3: empty query"):
        read_search_file(bad)
    bad.write_text("user_id:token\tquery:text\titem_id:token\n1\tcomedy\t5\textra\n")
    with pytest.raises(SearchError, match="line 2: 4 tab-separated fields, expected 3"):
        read_search_file(bad)
    bad.write_text("user\tquery\titem\n")
    with pytest.raises(SearchError, match="line 1: the header must be"):
        read_search_file(bad)


@pytest.fixture(scope="module")
def search_data(tmp_path_factory):
    """ml-small (120 real ml-100k users) with ml-100k's items and a real MiniLM text store."""
    data_path = tmp_path_factory.mktemp("search_data")
    folder = write_ml100k_slice(data_path)
    shutil.copy(ML100K / "ml-100k.item", folder / "ml-small.item")
    extract_text(data_path, "ml-small", ["movie_title", "class"], "sentence-transformers/all-MiniLM-L6-v2", name="text")
    return data_path


def test_queries_come_from_genres_never_titles(search_data):
    frame = queries_from_items(search_data / "ml-small", "class")
    inter = (search_data / "ml-small" / "ml-small.inter").read_text().splitlines()
    assert len(frame) == len(inter) - 1  # one search per interaction (every movie has genres)
    toy_story = frame[frame["item_id"] == "1"]["query"].iloc[0]
    assert toy_story == "animation children's comedy"
    assert frame["query"].nunique() < frame["item_id"].nunique() / 2  # shared by many items
    with pytest.raises(SearchError, match="choose one of"):
        queries_from_items(search_data / "ml-small", "movie_title_typo")


def test_one_shared_tag_per_search_from_real_lastfm_tags(tmp_path):
    """lastfm-2k: an artist's full tag list would name it alone; each search gets one of its tags
    carried by enough artists, drawn with a seed, from the text table and the benchmark files."""
    source = SHARED_DATASETS / "lastfm-2k" / "lfm2k_text.tsv"
    if not source.is_file():
        pytest.skip(f"{source} not available")
    folder = tmp_path / "lfm"
    folder.mkdir()
    tags = pd.read_csv(source, sep="\t", dtype=str).head(60).rename(columns={"artistID": "item_id"})
    tags.to_csv(folder / "lfm.text.tsv", sep="\t", index=False)
    rng = np.random.default_rng(0)
    for part, n in (("train", 300), ("test", 100)):  # benchmark files, no single lfm.inter
        rows = [f"{u}\t{i}" for u, i in zip(rng.integers(1, 40, n), rng.choice(tags["item_id"], n))]
        (folder / f"lfm.{part}.inter").write_text("user_id:token\titem_id:token\n" + "\n".join(rows) + "\n")
    recipe = dict(field="text", separator=",", pick="one", min_items=5, seed=7)
    frame = queries_from_items(folder, **recipe)

    item_tags = {item: set(text.split(",")) for item, text in zip(tags["item_id"], tags["text"])}
    carried = pd.Series([t for values in item_tags.values() for t in values]).value_counts()
    assert len(frame) <= 400 and frame["query"].nunique() > 5
    for item, query in zip(frame["item_id"], frame["query"]):
        assert query in item_tags[item]  # one of the artist's own tags...
        assert carried[query] >= 5  # ...shared by at least min_items artists
    assert queries_from_items(folder, **recipe).equals(frame)  # seeded
    assert not queries_from_items(folder, **dict(recipe, seed=8))["query"].equals(frame["query"])
    whole = queries_from_items(folder, "text", separator=",")  # pick all: the whole tag list
    assert whole["query"].nunique() > frame["query"].nunique()
    with pytest.raises(SearchError, match="choose 'all' or 'one'"):
        queries_from_items(folder, "text", pick="some")
    with pytest.raises(SearchError, match=r"nor a column of lfm.text.tsv.*choose one of \['text'\]"):
        queries_from_items(folder, "tags")
    config = {"search_path": str(tmp_path / "lfm.search"), "data_path": str(folder), "dataset": "lfm",
              "search_recipe": {"field": "text", "pick_one": True}}
    with pytest.raises(SearchError, match=r"unknown key\(s\) \['pick_one'\]"):
        ensure_search_file(config)
    config["search_recipe"] = recipe
    assert read_search_file(ensure_search_file(config))["query"].tolist() == frame["query"].tolist()


def _config(search_data, workdir, **extra):
    return dict(
        {
            "data_path": str(search_data),
            "checkpoint_dir": str(workdir / "saved"),
            "modalities": ["text"],
            "search_recipe": {"field": "class"},
            "search_batch_size": 256,
            "epochs": 2,
            "train_batch_size": 1024,
            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
            "state": "WARNING",
            "use_gpu": False,
        },
        **extra,
    )


def test_searches_follow_the_interaction_split(search_data, workdir):
    config = Config("UnifiedSearchRec", "ml-small", config_dict=_config(search_data, workdir))
    _, train, valid, test, model = _build(config)
    log = model.search_log
    assert all(a.flags.writeable for a in (log.users, log.query, log.items))  # torch shares them
    splits = [set(log.split(loader._dataset).tolist()) for loader in (train, valid, test)]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    assert sum(len(s) for s in splits) == len(log.users)
    test_pairs = set(zip(test._dataset.inter_feat["user_id"].tolist(), test._dataset.inter_feat["item_id"].tolist()))
    assert {(log.users[r], log.items[r]) for r in splits[2]} == test_pairs
    assert len(model.train_search_items) == len(splits[0])

    # what is evaluated beside a run (the search baselines) loads the run's split, whatever
    # random numbers were drawn before
    torch.rand(100), np.random.rand(100)
    _, _, _, again = load_data(Config("UnifiedSearchRec", "ml-small", config_dict=_config(search_data, workdir)))
    assert sorted(log.split(again._dataset).tolist()) == sorted(splits[2])


def test_search_evaluator_by_hand():
    class Log:  # 2 users, 2 queries, 5 items (+ padding 0)
        queries = ["a", "b"]
        n_items = 6
        users = np.array([1, 1, 2])
        query = np.array([0, 0, 1])
        items = np.array([3, 4, 5])

    evaluator = SearchEvaluator(Log, np.arange(3), ["ndcg", "recall", "precision", "map"], [1, 2])
    assert len(evaluator) == 2  # cases (user 1, "a") -> {3, 4} and (user 2, "b") -> {5}
    ranking = torch.tensor([0.0, 9.0, 1.0, 8.0, 2.0, 3.0])  # items by score: 1, 3, 5, 4, 2

    result = evaluator.evaluate(lambda users, queries: ranking.repeat(len(users), 1))
    # case 1: top-2 = [1, 3]: one hit at rank 2; case 2: [1, 3]: no hit
    assert result["search_recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert result["search_precision@1"] == 0.0 and result["search_precision@2"] == pytest.approx(0.25)
    ndcg_case1 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert result["search_ndcg@2"] == pytest.approx(ndcg_case1 / 2)
    assert result["search_map@2"] == pytest.approx((0.5 / 2) / 2)


def test_pcgrad_projects_conflicting_gradients():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([1.0, 2.0]))

    tiny = Tiny()
    first = (tiny.w * torch.tensor([1.0, 0.0])).sum()  # gradient (1, 0)
    second = (tiny.w * torch.tensor([-1.0, 1.0])).sum()  # gradient (-1, 1): they conflict
    loss = UnifiedSearchRec._pcgrad(tiny, first, second)
    loss.backward()
    # (1,0) - (-1/2)(-1,1) = (0.5, 0.5); (-1,1) - (-1/1)(1,0) = (0, 1); sum (0.5, 1.5)
    assert tiny.w.grad.tolist() == pytest.approx([0.5, 1.5])
    assert loss.item() == pytest.approx(first.item() + second.item())


def test_unified_model_trains_selects_and_serves(search_data, workdir, capsys):
    result = run("UnifiedSearchRec", "ml-small", config_dict=_config(search_data, workdir))
    test = result["test_result"]
    for name in ("ndcg@10", "search_ndcg@10", "search_recall@20", "search_map@10", "search_precision@10"):
        assert name in test
    assert result["valid_metric"] == "multitask_ndcg@10"
    assert test["multitask_ndcg@10"] == pytest.approx((test["ndcg@10"] + test["search_ndcg@10"]) / 2, abs=1e-4)
    assert test["search_ndcg@10"] > 0.2  # genre queries are found by content

    genres = {
        line.split("\t")[0]: line.split("\t")[-1].lower()
        for line in (ML100K / "ml-100k.item").read_text().splitlines()[1:]
    }
    assert main(["search", "--checkpoint", result["checkpoint"], "--query", "comedy romance", "-k", "10"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()[-10:]]
    assert len(rows) == 10
    assert sum("comedy" in genres[row[1]] or "romance" in genres[row[1]] for row in rows) >= 8

    assert main(["recommend", "--checkpoint", result["checkpoint"], "--user", "7", "-k", "5"]) == 0
    items = [line.split()[1] for line in capsys.readouterr().out.strip().splitlines()[-5:]]
    seen = {
        line.split("\t")[1]
        for line in (search_data / "ml-small" / "ml-small.inter").read_text().splitlines()[1:]
        if line.split("\t")[0] == "7"
    }
    assert len(items) == 5 and not set(items) & seen  # never an item the user already has
    assert main(["recommend", "--checkpoint", result["checkpoint"], "--user", "no-such-user"]) == 2


def test_recommend_prints_only_the_items(fast_config, workdir):
    """A checkpoint trained with RecBole's INFO logging: `recommend` rebuilds it without printing
    the config and dataset summaries (a fresh process, where RecBole's logger is set up)."""
    result = run("BPR", "ml-small", config_dict=dict(fast_config, state="INFO"))
    done = subprocess.run(
        [sys.executable, "-m", "recbole_mm", "recommend", "--checkpoint", result["checkpoint"],
         "--user", "7", "-k", "3"],
        cwd=workdir, capture_output=True, text=True, check=True,
    )
    assert len(done.stdout.splitlines()) == 3
    assert "INFO" not in done.stderr, done.stderr[:2000]


@pytest.mark.parametrize(
    "overrides",
    [
        {"search_weight": 0.0, "search_ranking": "user", "valid_metric": "NDCG@10"},
        {"rec_weight": 0.0, "valid_metric": "search_ndcg@10", "loss_weighting": "uncertainty"},
    ],
)
def test_single_task_ablations_run(search_data, workdir, overrides):
    config = _config(search_data, workdir, epochs=1, **overrides)
    test = run("UnifiedSearchRec", "ml-small", config_dict=config)["test_result"]
    assert test["search_ndcg@10"] >= 0 and test["ndcg@10"] >= 0


def test_cold_items_are_searched_by_content(search_data, workdir):
    config = Config("UnifiedSearchRec", "ml-small", config_dict=_config(search_data, workdir))
    _, train, _, _, model = _build(config)
    trained = set(train._dataset.inter_feat["item_id"].tolist())
    cold = [i for i in range(1, model.n_items) if i not in trained]
    assert cold, "the split leaves some items without training interactions"
    model.eval()
    before = model.item_vectors()[cold].clone()
    with torch.no_grad():
        model.item_embedding.weight[cold] += 100.0  # their (untrained) ID vectors do not count
    model.train()
    model.eval()
    torch.testing.assert_close(model.item_vectors()[cold], before)
