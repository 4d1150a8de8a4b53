"""Converters (``recbole-mm convert``) and the atomic-file writer.

Real files from ../shared/datasets where they exist (each such test skips, saying why, when the
folder is absent), small fixtures in the real layouts for the rest, and filtering/splitting checked
against hand-computed answers. Expected counts come from the datasets' documentation or from reading
the raw files independently, never from the converter itself.
"""

import csv
import gzip
import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATASETS
from recbole_mm import Config, create_dataset, run
from recbole_mm.cli import main
from recbole_mm.data.features import FeatureStore
from recbole_mm.dataset_tools.atomic import (
    AtomicFileError,
    as_token,
    read_atomic,
    read_text_table,
    write_atomic,
    write_text_table,
)
from recbole_mm.dataset_tools.convert import ConversionError, convert
from recbole_mm.dataset_tools.convert.common import implicit, kcore, split_by_user
from recbole_mm.files import replace_atomically
from recbole_mm.search.data import read_search_file

PARTS = ("train", "valid", "test")
GENRES_100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]


def shared(*parts):
    """A path under the shared real datasets, or skip the test saying what is missing."""
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs the shared real datasets: {path} is absent "
            "(put them at ../shared/datasets or set RECBOLE_MM_SHARED_DATASETS)"
        )
    return path


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def table(path):
    return read_atomic(path)[0]


def pairs(frame):
    return set(zip(frame["user_id"], frame["item_id"]))


def load_recbole(data_path, name):
    """The converted dataset as RecBole loads it, with the YAML the converter wrote."""
    config = Config(
        "BPR",
        name,
        config_file_list=[str(data_path / name / f"{name}.yaml")],
        config_dict={"data_path": str(data_path), "state": "WARNING", "use_gpu": False},
    )
    return create_dataset(config)


# ------------------------------------------------------------------------------ atomic files


def test_atomic_round_trip(tmp_path):
    frame = pd.DataFrame(
        {
            "item_id": ["7", "8"],
            "genres": [["Drama", "Film-Noir"], []],
            "year": [1995.0, 2001.5],
            "emb": [[0.25, -1.0], [1e-5, 3.0]],
        }
    )
    types = {"item_id": "token", "genres": "token_seq", "year": "float", "emb": "float_seq"}
    path = write_atomic(tmp_path / "d.item", frame, types)
    assert path.read_text().splitlines() == [
        "item_id:token\tgenres:token_seq\tyear:float\temb:float_seq",
        "7\tDrama Film-Noir\t1995.0\t0.25 -1.0",
        "8\t\t2001.5\t1e-05 3.0",
    ]
    back, back_types = read_atomic(path)
    assert back_types == types
    assert back.to_dict("list") == frame.to_dict("list")


TOKENS = {"u": "token", "i": "token"}
INTER_WITH_RATING = {**TOKENS, "r": "float"}
ITEM_WITH_TAGS = {"item_id": "token", "g": "token_seq"}


@pytest.mark.parametrize(
    "name, frame, types, message",
    [
        ("d.item", {"item_id": ["1", "a\tb"]}, {"item_id": "token"}, "row 2"),
        ("d.item", {"item_id": ["1"], "t": ["two\nlines"]}, dict.fromkeys(["item_id", "t"], "token"),
         "'t'"),
        ("d.item", {"item_id": ['"quoted']}, {"item_id": "token"}, "double quote"),
        ("d.item", {"item_id": ["1"], "g": [["a b"]]}, ITEM_WITH_TAGS, "'a b'"),
        ("d.item", {"item_id": ["1"], "g": ["a b"]}, ITEM_WITH_TAGS, "list"),
        ("d.inter", {"u": ["1"], "i": ["2"], "r": [math.inf]}, INTER_WITH_RATING, "finite"),
        ("d.inter", {"u": ["1"], "i": ["2"], "r": ["x"]}, INTER_WITH_RATING, "'x'"),
        ("d.inter", {"u": ["1"], "i": ["2"]}, INTER_WITH_RATING, "['r'] are missing"),
        ("d.inter", {"u": ["1", "1"], "i": ["2", "2"]}, TOKENS, "rows 1 and 2"),
        ("d.item", {"item_id": ["1", "1"], "i": ["2", "3"]}, {"item_id": "token"}, "rows 1 and 2"),
        ("d.user", {"user_id": ["", "1"]}, {"user_id": "token"}, "is empty"),
        ("d.item", {"item_id": ["1"]}, {"item_id": "string"}, "type 'string'"),
    ],
)
def test_atomic_writer_refuses_what_recbole_would_misread(tmp_path, name, frame, types, message):
    with pytest.raises(AtomicFileError) as error:
        write_atomic(tmp_path / name, pd.DataFrame(frame), types)
    assert str(error.value).startswith(str(tmp_path / name)) and message in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_atomic_writer_allows_repeated_interactions_when_asked(tmp_path):
    frame = pd.DataFrame({"u": ["1", "1"], "i": ["2", "2"], "t": [1.0, 2.0]})
    path = write_atomic(tmp_path / "d.inter", frame, {**TOKENS, "t": "float"}, key=[])
    assert len(table(path)) == 2


def test_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "d.inter"
    path.write_text("old\n")

    def fails_halfway(handle):
        handle.write("half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(path, fails_halfway)
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_text_table_keeps_one_line_per_item_and_round_trips(tmp_path):
    frame = pd.DataFrame(
        {
            "item_id": ["1", "2"],
            "title": ['"Quoted" title', "tab\there"],
            "desc": ["two\nlines ", None],
        }
    )
    path = write_text_table(tmp_path / "d.text.tsv", frame)
    assert len(path.read_text().splitlines()) == 3
    expected = [
        ["item_id", "title", "desc"],
        ["1", '"Quoted" title', "two lines"],
        ["2", "tab here", ""],
    ]
    with open(path, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle, delimiter="\t")) == expected
    assert read_text_table(path).values.tolist() == expected[1:]


def test_as_token():
    assert as_token("  seen live ") == "seen_live"
    assert as_token('say "hi"') == "say_'hi'"
    assert as_token(None) == "" and as_token(float("nan")) == ""


# ---------------------------------------------------------------- filtering and splitting by hand


def test_kcore_cascades_until_every_user_and_item_has_k():
    inter = pd.DataFrame(
        [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2"), ("u3", "i3"), ("u4", "i2"),
         ("u4", "i4")],
        columns=["user_id", "item_id"],
    )
    # round 1 drops u3 (1 interaction) and i4 (1 user); u4 is then left with 1 and goes in round 2
    assert pairs(kcore(inter, 2)) == {("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2")}
    assert kcore(inter, 3).empty
    assert len(kcore(inter, 1)) == len(inter)


def test_implicit_threshold_keeps_ratings_at_or_above_and_drops_the_column():
    inter = pd.DataFrame(
        {"user_id": list("aabb"), "item_id": list("xyxy"), "rating": [1, 3.5, 4, 5]}
    )
    kept = implicit(inter, 3.5)
    assert pairs(kept) == {("a", "y"), ("b", "x"), ("b", "y")}
    assert list(kept.columns) == ["user_id", "item_id"]
    with pytest.raises(ConversionError, match="no ratings"):
        implicit(inter.drop(columns="rating"), 1)


def test_split_by_user_counts_per_user_by_hand():
    sizes = {"a": 10, "b": 3, "c": 2, "d": 1, "e": 5}
    users = np.array([user for user, size in sizes.items() for _ in range(size)])
    parts = split_by_user(users, (0.7, 0.1, 0.2), seed=1)
    counts = pd.crosstab(users, parts).reindex(columns=list(PARTS), fill_value=0)
    # floor(ratio * n), then one each for an empty part while the user keeps a training row
    assert counts.loc["a"].tolist() == [7, 1, 2]
    assert counts.loc["b"].tolist() == [1, 1, 1]
    assert counts.loc["c"].tolist() == [1, 0, 1]
    assert counts.loc["d"].tolist() == [1, 0, 0]
    assert counts.loc["e"].tolist() == [3, 1, 1]


def test_split_by_user_is_seeded_and_random_within_each_user():
    users = np.repeat([f"u{i}" for i in range(50)], 20)
    first = split_by_user(users, (0.8, 0.1, 0.1), seed=7)
    assert (split_by_user(users, (0.8, 0.1, 0.1), seed=7) == first).all()
    assert (split_by_user(users, (0.8, 0.1, 0.1), seed=8) != first).any()
    # the held-out rows are not always the same positions of each user's list
    positions = {tuple(np.flatnonzero(first[i * 20 : (i + 1) * 20] == "test")) for i in range(50)}
    assert len(positions) > 10


def test_random_split_writes_benchmark_files_every_user_in_train(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{i}") for u in range(40) for i in rng.choice(60, 3 + u % 9, replace=False)
    ]
    src = write(tmp_path / "raw.csv", "user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    outs = []
    for run_id in ("a", "b"):
        summary = convert("table", src, tmp_path / run_id, "d", user_col="user", item_col="item",
                          split="0.6,0.2,0.2", seed=3)
        folder = tmp_path / run_id / "d"
        outs.append([table(folder / f"d.{part}.inter") for part in PARTS])
        assert summary["files"] == {f"d.{p}.inter": len(f) for p, f in zip(PARTS, outs[-1])}
        yaml_text = (folder / "d.yaml").read_text()
        assert "benchmark_filename: [train, valid, test]" in yaml_text
    train, valid, test = outs[0]
    assert all(a.equals(b) for a, b in zip(outs[0], outs[1]))  # same seed, same files
    assert pairs(train) | pairs(valid) | pairs(test) == set(rows)
    assert len(train) + len(valid) + len(test) == len(rows)
    assert set(train["user_id"]) == {u for u, _ in rows}  # every user has >= 3 rows: all in train


# ------------------------------------------------------------------------------- mmrec (real data)


def test_mmrec_lastfm_keep_split_features_text_and_training(tmp_path, workdir):
    src = shared("lastfm-2k", "mmrec")
    text_file = shared("lastfm-2k", "lfm2k_text.tsv")
    out = tmp_path / "data"
    summary = convert("mmrec", src, out, "lfm2k", keep_split=True, item_text=text_file)
    folder = out / "lfm2k"
    counts = {part: len(table(folder / f"lfm2k.{part}.inter")) for part in PARTS}
    assert counts == {"train": 44327, "valid": 4799, "test": 7219}  # the release's x_label counts
    assert (summary["users"], summary["items"]) == (1858, 1425)

    store = FeatureStore(folder / "features")
    shapes = {name: (entry["rows"], entry["dim"]) for name, entry in store.manifest().items()}
    assert shapes == {"all-MiniLM-L6-v2": (1425, 384), "vggish": (1425, 128), "whisper": (1425, 512)}
    tokens, vggish = store.read("vggish")
    assert tokens[5] == "5" and np.allclose(vggish[5], np.load(src / "vggish.npy")[5])

    # text of item 0 = the tags of its HetRec artist, found through the row-aligned original ids
    with open(src / "lfm2k_og_ids.inter", newline="") as f:
        artist_of_item0 = next(row["itemID"] for row in csv.DictReader(f, delimiter="\t"))
    with open(text_file, newline="") as f:
        tags = {row["artistID"]: row["text"] for row in csv.DictReader(f, delimiter="\t")}
    text = read_text_table(folder / "lfm2k.text.tsv").set_index("item_id")["text"]
    assert len(text) == 1425 and text["0"] == tags[artist_of_item0]

    result = run(
        "LightGCN",
        "lfm2k",
        config_file_list=[str(folder / "lfm2k.yaml")],
        config_dict={"data_path": str(out), "epochs": 1, "state": "WARNING", "use_gpu": False,
                     "checkpoint_dir": str(workdir / "saved")},
    )
    assert 0 < result["test_result"]["recall@10"] <= 1


def test_mmrec_dbbook_titles_deduplicated_and_threshold(tmp_path):
    src = shared("dbbook", "mmrec", "dbbook.inter")
    titles = shared("dbbook", "full_extended_dbbook_img_links.tsv")
    summary = convert("mmrec", src, tmp_path, "dbbook", keep_split=True, implicit_threshold=1,
                      item_text=titles, item_text_cols="name")
    with open(src, newline="") as f:
        positives = [row for row in csv.DictReader(f, delimiter="\t") if row["rating"] == "1"]
    assert summary["interactions"] == len(positives)
    assert summary["items"] == len({row["itemID"] for row in positives})
    train = table(tmp_path / "dbbook" / "dbbook.train.inter")
    assert list(train.columns) == ["user_id", "item_id"]  # the rating column is gone
    text = read_text_table(tmp_path / "dbbook" / "dbbook.text.tsv")
    assert text["item_id"].is_unique and len(text) == summary["items"]  # one title per item
    assert summary["notes"] == [f"rating >= 1: kept {len(positives)} of 121779 rows"]


# ----------------------------------------------------------------------- lightgcn-txt (real data)


def test_lightgcn_txt_ml1m_counts_and_side_data(tmp_path):
    src = shared("ml-1m", "implicit")
    movies = shared("ml-1m", "grouplens", "movies.dat")
    summary = convert("lightgcn-txt", src, tmp_path, "ml1m", keep_split=True, movies=movies,
                      item_json=src / "llm_response_item.json")
    folder = tmp_path / "ml1m"
    parts = {part: table(folder / f"ml1m.{part}.inter") for part in PARTS}
    assert (summary["users"], summary["items"]) == (6040, 3260)
    assert len(parts["train"]) + len(parts["valid"]) == 801218  # train.txt, 10% moved to valid
    assert len(parts["test"]) == 197321
    assert pairs(parts["valid"]).isdisjoint(pairs(parts["train"]))
    item = table(folder / "ml1m.item").set_index("item_id")
    assert item.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]  # Toy Story
    assert item.loc["1", "year"] == "1995" and len(item) == 3260
    text = read_text_table(folder / "ml1m.text.tsv").set_index("item_id")
    assert text.loc["1", "title"] == "Toy Story (1995)"
    assert text.loc["1", "description"].startswith('"Toy Story (1995)" is a pioneering animated')


# ---------------------------------------------------------------------- hetrec-lastfm (real data)


def test_hetrec_lastfm_counts_without_tag_assignments(tmp_path):
    src = shared("lastfm-2k", "hetrec")
    summary = convert("hetrec-lastfm", src, tmp_path, "hetrec")
    # HetRec's readme: 1892 users, 17632 artists, 92834 user-listened artist relations
    assert (summary["users"], summary["items"], summary["interactions"]) == (1892, 17632, 92834)
    inter = table(tmp_path / "hetrec" / "hetrec.inter")
    assert inter.iloc[0].tolist() == ["2", "51", 13883.0]  # first line of user_artists.dat
    text = read_text_table(tmp_path / "hetrec" / "hetrec.text.tsv").set_index("item_id")
    assert text.loc["707", "name"] == "Metallica"
    assert any("artists get no tags" in note for note in summary["notes"])
    assert not (tmp_path / "hetrec" / "hetrec.item").exists()


def hetrec_fixture(folder):
    write(
        folder / "user_artists.dat",
        "userID\tartistID\tweight\r\n2\t51\t100\r\n2\t52\t5\r\n3\t51\t7\r\n",
    )
    write(
        folder / "artists.dat",
        "id\tname\turl\tpictureURL\n51\tDuran Duran\tu\tp51\n52\tMorcheeba\tu\tp52\n",
    )
    tags = "tagID\ttagValue\r\n1\tmetal\r\n2\tseen live\r\n3\tmañana\r\n"
    write(folder / "tags.dat", tags, "latin-1")
    write(
        folder / "user_taggedartists.dat",
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "2\t51\t2\t1\t4\t2009\n3\t51\t2\t1\t4\t2009\n2\t51\t3\t1\t4\t2009\n2\t52\t1\t1\t4\t2009\n"
        "2\t99\t1\t1\t4\t2009\n",
    )
    return folder


def test_hetrec_lastfm_tags_most_used_first_and_recbole_loads_them(tmp_path):
    src = hetrec_fixture(tmp_path / "raw")
    convert("hetrec-lastfm", src, tmp_path / "data", "fm")
    folder = tmp_path / "data" / "fm"
    item = table(folder / "fm.item").set_index("item_id")
    assert item["tag_id"].to_dict() == {"51": ["2", "3"], "52": ["1"]}
    text = read_text_table(folder / "fm.text.tsv").set_index("item_id")
    assert text.loc["51", "tags"] == "seen live,mañana"  # Latin-1 tags.dat decoded
    dataset = load_recbole(tmp_path / "data", "fm")
    assert dataset.inter_num == 3 and dataset.item_num == 3  # 2 artists + padding
    internal = dataset.token2id("item_id", "51")
    tag_tokens = dataset.id2token("tag_id", np.asarray(dataset.item_feat["tag_id"][internal])[:2])
    assert list(tag_tokens) == ["2", "3"]


# --------------------------------------------------------------------------------------- movielens


def ml100k_fixture(folder):
    write(folder / "u.data", "1\t10\t4\t881250949\n1\t20\t2\t881250950\n2\t10\t5\t881250951\n")
    flags_10 = ["0"] * 19
    flags_10[GENRES_100K.index("Comedy")] = flags_10[GENRES_100K.index("Film-Noir")] = "1"
    write(
        folder / "u.item",
        f"10|Richard III (1995)|22-Jan-1996||http://x|{'|'.join(flags_10)}\n"
        f"20|Café Noir (1997)|01-Jan-1997||http://y|{'|'.join(['1'] + ['0'] * 18)}\n",
        "latin-1",
    )
    write(folder / "u.genre", "".join(f"{name}|{i}\n" for i, name in enumerate(GENRES_100K)) + "\n")
    write(folder / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def test_movielens_100k_layout(tmp_path):
    convert("movielens", ml100k_fixture(tmp_path / "raw"), tmp_path, "m")
    folder = tmp_path / "m"
    inter = table(folder / "m.inter")
    assert inter.values.tolist() == [["1", "10", 4.0, 881250949.0], ["1", "20", 2.0, 881250950.0],
                                     ["2", "10", 5.0, 881250951.0]]
    item = table(folder / "m.item").set_index("item_id")
    assert item.loc["10", "genres"] == ["Comedy", "Film-Noir"]
    assert item.loc["20", "genres"] == ["unknown"]
    assert item.loc["10", "year"] == "1995"
    user = table(folder / "m.user").set_index("user_id")
    assert user.loc["2"].tolist() == [53.0, "F", "other", "94043"]
    titles = read_text_table(folder / "m.text.tsv")["title"].tolist()
    assert titles == ["Richard III (1995)", "Café Noir (1997)"]  # Latin-1 u.item decoded


def ml1m_fixture(folder):
    """ratings.dat written here (absent from the shared data); movies.dat and users.dat real."""
    folder.mkdir(parents=True)
    for name in ("movies.dat", "users.dat"):
        os.symlink(shared("ml-1m", "grouplens", name), folder / name)
    lines = ["1::1193::5::978300760", "1::661::3::978302109", "1::3408::4::978300275",
             "2::1193::2::978298413", "2::3408::5::978299000", "3::661::4::978297867"]
    write(folder / "ratings.dat", "\n".join(lines) + "\n")
    return folder


def test_movielens_1m_real_side_files_load_in_recbole(tmp_path):
    summary = convert("movielens", ml1m_fixture(tmp_path / "raw"), tmp_path / "data", "ml", kcore=1)
    assert summary["files"] == {"ml.inter": 6, "ml.item": 3, "ml.user": 3, "ml.text.tsv": 3}
    folder = tmp_path / "data" / "ml"
    user = table(folder / "ml.user").set_index("user_id")
    assert user.loc["1"].tolist() == ["F", "1", "10", "48067"]  # users.dat line 1
    text = read_text_table(folder / "ml.text.tsv").set_index("item_id")
    assert text.loc["1193", "title"] == "One Flew Over the Cuckoo's Nest (1975)"
    dataset = load_recbole(tmp_path / "data", "ml")
    assert (dataset.user_num, dataset.item_num, dataset.inter_num) == (4, 4, 6)
    assert {"genres", "year"} <= set(dataset.item_feat.columns)
    assert {"gender", "age", "occupation", "zip_code"} <= set(dataset.user_feat.columns)
    assert "rating" in dataset.inter_feat.columns and "timestamp" in dataset.inter_feat.columns
    genres = np.asarray(dataset.item_feat["genres"][dataset.token2id("item_id", "661")])
    genres = set(dataset.id2token("genres", genres[genres > 0]))
    assert genres == {"Animation", "Children's", "Musical"}  # movies.dat line of 661


# ------------------------------------------------------------------------------------------- table


def test_table_csv_with_quotes_dates_and_item_table(tmp_path):
    src = write(
        tmp_path / "events.csv",
        "who,what,stars,when\n"
        "ann,b1,4,2020-01-01 00:00:10\nann,b2,2,2020-01-02\n\"bob\",b1,5,2020-01-03\n",
    )
    items = write(
        tmp_path / "books.tsv",
        "id\ttitle\tgenres\n"
        'b1\t"Tabs, commas\tand ""quotes"""\tsci fi|classic\n'
        "b2\tPlain\t\n"
        'b1\t"Tabs, commas\tand ""quotes"""\tsci fi|classic\n',  # an identical repeat
    )
    convert("table", src, tmp_path / "d", "t", user_col="who", item_col="what", rating_col="stars",
            time_col="when", item_table=items, item_id_col="id", item_text_cols="title",
            item_token_cols="genres")
    folder = tmp_path / "d" / "t"
    inter = table(folder / "t.inter")
    assert inter["timestamp"].tolist() == [1577836810.0, 1577923200.0, 1578009600.0]
    assert inter["user_id"].tolist() == ["ann", "ann", "bob"]
    item = table(folder / "t.item").set_index("item_id")
    assert item["genres"].to_dict() == {"b1": ["sci_fi", "classic"], "b2": []}
    text = read_text_table(folder / "t.text.tsv").set_index("item_id")
    assert text.loc["b1", "title"] == 'Tabs, commas and "quotes"'


def test_table_query_log_becomes_a_search_file(tmp_path):
    src = write(
        tmp_path / "log.csv",
        "user,item,query,time,stars\n"
        "u1,a,Red  Shoes,10,5\nu1,b,,11,5\nu2,a,red shoes,12,4\nu2,c,running,13,5\nu3,c,trail,14,1\n",
    )
    summary = convert("table", src, tmp_path / "d", "q", user_col="user", item_col="item",
                      query_col="query", time_col="time", rating_col="stars", implicit_threshold=3)
    searches = read_search_file(tmp_path / "d" / "q" / "q.search")
    # u3's interaction falls to the implicit threshold, and so does its search; the line without a
    # query is an interaction only
    assert list(zip(searches["user_id"], searches["query"], searches["item_id"])) == [
        ("u1", "red shoes", "a"), ("u2", "red shoes", "a"), ("u2", "running", "c")]
    assert searches["timestamp"].tolist() == [10.0, 12.0, 13.0]
    assert summary["files"]["q.search"] == 3 and summary["files"]["q.inter"] == 4
    assert "q.search" in (tmp_path / "d" / "q" / "q.yaml").read_text()
    empty = write(tmp_path / "none.csv", "user,item,query\nu1,a,\n")
    with pytest.raises(ConversionError, match="query column query is empty on every line"):
        convert("table", empty, tmp_path / "e", "q", user_col="user", item_col="item", query_col="query")


def test_table_parquet(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet support comes from pyarrow")
    src = tmp_path / "x.parquet"
    pd.DataFrame({"u": [1, 1, 2], "i": [5, 6, 5], "r": [1.0, 0.0, 1.0]}).to_parquet(src)
    summary = convert("table", src, tmp_path, "p", user_col="u", item_col="i", rating_col="r",
                      implicit_threshold=1)
    assert pairs(table(tmp_path / "p" / "p.inter")) == {("1", "5"), ("2", "5")}
    assert summary["items"] == 1


# ------------------------------------------------------------------------------------------ amazon


def test_amazon_lattice_split_real(tmp_path):
    src = shared("amazon-baby")
    summary = convert("amazon", src, tmp_path, "baby", keep_split=True)
    counts = {p: len(table(tmp_path / "baby" / f"baby.{p}.inter")) for p in PARTS}
    assert counts == {"train": 119674, "valid": 20559, "test": 20559}  # LATTICE / MMRec numbers
    assert (summary["users"], summary["items"]) == (19445, 7050)
    text = read_text_table(tmp_path / "baby" / "baby.text.tsv").set_index("item_id")
    assert text.loc["0", "asin"] == "097293751X"  # item2id.json: the first ASIN has index 0


def test_amazon_2014_and_2018_review_lines(tmp_path):
    reviews_2014 = [
        {"reviewerID": "A1", "asin": "B01", "overall": 5.0, "unixReviewTime": 1388534400,
         "reviewText": "ok"},
        {"reviewerID": "A2", "asin": "B01", "overall": 3.0, "unixReviewTime": 1388620800},
        {"reviewerID": "A1", "asin": "B02", "overall": 4.0, "unixReviewTime": 1388707200},
        {"reviewerID": "A1", "asin": "B01", "overall": 5.0, "unixReviewTime": 1388534400},
    ]
    with gzip.open(tmp_path / "reviews_Baby.json.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in reviews_2014))
    meta_2014 = [  # 2014 metadata are Python literals, not JSON
        {"asin": "B01", "title": "Soft 'Blanket'", "categories": [["Baby", "Nursery"], ["Baby"]],
         "imUrl": "http://img/1.jpg", "description": "Warm\nand soft"},
    ]
    with gzip.open(tmp_path / "meta_Baby.json.gz", "wt") as f:
        f.write("".join(repr(m) + "\n" for m in meta_2014))
    summary = convert("amazon", tmp_path / "reviews_Baby.json.gz", tmp_path / "d", "a14",
                      meta=tmp_path / "meta_Baby.json.gz")
    folder = tmp_path / "d" / "a14"
    assert table(folder / "a14.inter").values.tolist() == [
        ["A1", "B01", 5.0, 1388534400.0],
        ["A2", "B01", 3.0, 1388620800.0],
        ["A1", "B02", 4.0, 1388707200.0],
    ]
    item = table(folder / "a14.item")
    assert item.values.tolist() == [["B01", ["Baby", "Nursery"]]]
    text = read_text_table(folder / "a14.text.tsv")
    assert text.values.tolist() == [["B01", "Soft 'Blanket'", "Warm and soft", "http://img/1.jpg"]]
    assert "dropped 1 repeated (user, item) rows (kept the first)" in summary["notes"]
    assert "1 reviewed items have no metadata in meta_Baby.json.gz" in summary["notes"]

    review = {"reviewerID": "U", "asin": "X", "overall": 2.0}
    meta = {"asin": "X", "title": "T", "category": ["Baby Products", "Gear"],
            "description": ["a", "b"], "imageURLHighRes": ["http://hi/x.jpg"]}
    write(tmp_path / "Baby.json", json.dumps(review) + "\n")
    write(tmp_path / "meta.json", json.dumps(meta) + "\n")
    convert("amazon", tmp_path / "Baby.json", tmp_path / "d", "a18", meta=tmp_path / "meta.json")
    folder = tmp_path / "d" / "a18"
    assert list(table(folder / "a18.inter").columns) == ["user_id", "item_id", "rating"]
    assert table(folder / "a18.item")["categories"].tolist() == [["Baby_Products", "Gear"]]
    text = read_text_table(folder / "a18.text.tsv")
    assert text.values.tolist() == [["X", "T", "a b", "http://hi/x.jpg"]]


# -------------------------------------------------------------------------------------- bad input


MMREC_HEADER = "userID\titemID\trating\tx_label"
MMREC_LINES = ("0\t0\t1\t0", "0\t1\t1\t2", "1\t1\t1\t1")


def mmrec_fixture(folder, lines=MMREC_LINES, header=MMREC_HEADER, rows=2):
    """x.inter (2 items) in the MMRec layout and a [rows, 4] feature matrix beside it."""
    write(folder / "x.inter", "\n".join([header, *lines]) + "\n")
    np.save(folder / "feat.npy", np.ones((rows, 4), dtype=np.float32))
    return folder


# Each case writes raw files into a folder and returns (format, --src, options, the fragments the
# error must contain: the file and line, and what is wrong).


def _mmrec_short_line(raw):
    src = mmrec_fixture(raw, lines=("0\t0\t1\t0", "0\t1\t1"))
    return "mmrec", src, {}, ["x.inter, line 3", "expected 4 fields", "found 3"]


def _mmrec_missing_column(raw):
    src = mmrec_fixture(raw, header="userID\titemID\trating\tlabel")
    return "mmrec", src, {}, ["x.inter, line 1 (header)", "['x_label'] are missing"]


def _mmrec_non_numeric_item(raw):
    src = mmrec_fixture(raw, lines=("0\t0\t1\t0", "0\tfoo\t1\t0"))
    return "mmrec", src, {}, ["x.inter, line 3", "itemID 'foo' is not an integer"]


def _mmrec_bad_split_label(raw):
    src = mmrec_fixture(raw, lines=("0\t0\t1\t0", "0\t1\t1\t5"))
    return "mmrec", src, {}, ["x.inter, line 3", "x_label 5 is not 0, 1 or 2"]


def _npy_row_count(raw):
    src = mmrec_fixture(raw, rows=3)
    return "mmrec", src, {}, ["feat.npy: 3 rows", "x.inter has 2 items", "row r must hold"]


def _npy_not_finite(raw):
    src = mmrec_fixture(raw)
    np.save(src / "feat.npy", np.array([[1.0, 2.0], [np.nan, 0.0]]))
    return "mmrec", src, {}, ["feat.npy", "row 1", "NaN"]


def _item_missing_from_map(raw):
    write(raw / "train.txt", "0 0 1\n1 1 2\n")
    write(raw / "test.txt", "0 1\n")
    write(raw / "item_map.txt", "10 0\n11 1\n")
    return "lightgcn-txt", raw, {}, ["train.txt, line 2", "item 2 is not in item_map.txt"]


def _duplicate_id_in_map(raw):
    write(raw / "train.txt", "0 0 1\n")
    write(raw / "test.txt", "0 1\n")
    write(raw / "item_map.txt", "10 0\n11 1\n10 2\n")
    return "lightgcn-txt", raw, {}, ["item_map.txt, lines 1 and 3", "'10'", "appears twice"]


def _non_integer_in_lists(raw):
    write(raw / "train.txt", "0 0 1\n1 x\n")
    write(raw / "test.txt", "0 1\n")
    return "lightgcn-txt", raw, {}, ["train.txt, line 2", "'x' is not a non-negative integer"]


def _non_numeric_rating(raw):
    write(raw / "ratings.dat", "1::10::4::5\n1::11::four::6\n")
    return "movielens", raw, {}, ["ratings.dat, line 2", "rating 'four' is not a number"]


def _rating_for_unknown_movie(raw):
    write(raw / "ratings.dat", "1::10::4::5\n\n1::11::3::6\n")  # line 2 is blank
    write(raw / "movies.dat", "10::A (1990)::Drama\n")
    return "movielens", raw, {}, ["ratings.dat, line 3", "item '11' is not in movies.dat"]


def _unknown_artist(raw):
    write(raw / "user_artists.dat", "userID\tartistID\tweight\n2\t51\t1\n2\t99\t1\n")
    write(raw / "artists.dat", "id\tname\n51\tA\n")
    return "hetrec-lastfm", raw, {}, ["user_artists.dat, line 3", "'99' is not in artists.dat"]


def _conflicting_item_rows(raw):
    write(raw / "i.csv", "u,i\na,1\n")
    write(raw / "items.csv", "i,title\n1,A\n1,B\n")
    options = {"user_col": "u", "item_col": "i", "item_table": raw / "items.csv",
               "item_text_cols": "title"}
    return "table", raw / "i.csv", options, ["items.csv, lines 2 and 3", "appears twice"]


def _missing_table_column(raw):
    write(raw / "i.csv", "user,item\na,1\n")
    options = {"user_col": "u", "item_col": "item"}
    return "table", raw / "i.csv", options, ["i.csv, line 1 (header)", "['u'] are missing"]


def _quote_in_user_id(raw):  # read fine, then refused by the atomic writer
    write(raw / "i.tsv", 'u\ti\n"a""b"\t1\n')
    options = {"user_col": "u", "item_col": "i"}
    return "table", raw / "i.tsv", options, [str(raw.parent / "out" / "d" / "d.inter: row 1"),
                                              "double quote"]


def _bad_json_line(raw):
    write(raw / "r.json", '{"reviewerID": "A", "asin": "B", "overall": 1}\n{"reviewerID": \n')
    return "amazon", raw / "r.json", {}, ["r.json, line 2", "not a JSON object"]


def _lattice_unknown_item(raw):
    write(raw / "item2id.json", '{"B1": 0, "B2": 1}')
    write(raw / "train.json", '{"0": [0, 1]}')
    write(raw / "val.json", '{"0": [1]}')
    write(raw / "test.json", '{"0": [2]}')
    fragments = ["test.json, user '0'", "item 2 is not an index of item2id.json"]
    return "amazon", raw, {"keep_split": True}, fragments


@pytest.mark.parametrize(
    "case",
    [
        _mmrec_short_line, _mmrec_missing_column, _mmrec_non_numeric_item, _mmrec_bad_split_label,
        _npy_row_count, _npy_not_finite, _item_missing_from_map, _duplicate_id_in_map,
        _non_integer_in_lists, _non_numeric_rating, _rating_for_unknown_movie, _unknown_artist,
        _conflicting_item_rows, _missing_table_column, _quote_in_user_id, _bad_json_line,
        _lattice_unknown_item,
    ],
)
def test_bad_input_names_file_and_line_and_leaves_nothing(tmp_path, case):
    raw = tmp_path / "raw"
    raw.mkdir()
    fmt, src, options, fragments = case(raw)
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as error:
        convert(fmt, src, out, "d", **options)
    missing = [fragment for fragment in fragments if fragment not in str(error.value)]
    assert not missing, f"{missing} not in: {error.value}"
    assert not out.exists()  # not even DATA_DIR, which this conversion would have created


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    src = mmrec_fixture(tmp_path / "raw")
    convert("mmrec", src, tmp_path / "out", "d")
    with pytest.raises(ConversionError, match="exists; pass --overwrite"):
        convert("mmrec", src, tmp_path / "out", "d", keep_split=True)
    convert("mmrec", src, tmp_path / "out", "d", keep_split=True, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d"]
    assert (tmp_path / "out" / "d" / "d.train.inter").exists()
    assert not (tmp_path / "out" / "d" / "d.inter").exists()


def test_keep_split_needs_a_source_split(tmp_path):
    src = write(tmp_path / "i.csv", "u,i\na,1\n")
    with pytest.raises(ConversionError, match="no split of its own; use --split"):
        convert("table", src, tmp_path / "out", "d", user_col="u", item_col="i", keep_split=True)


# --------------------------------------------------------------------------------------------- CLI


def test_cli_convert_and_its_errors(tmp_path, capsys):
    src = mmrec_fixture(tmp_path / "raw")
    argv = ["convert", "mmrec", "--src", str(src), "--out", str(tmp_path / "out"), "--name", "d"]
    assert main(argv + ["--keep-split"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "d.train.inter: 1" in out
    assert main(argv) == 2
    assert "error: " in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--split", "0.5,0.5"]) == 2
    assert "--split 0.5,0.5: expected three fractions" in capsys.readouterr().err
