"""Search data: the ``.search`` atomic file, and queries built from item metadata.

A ``.search`` file (``<data_path>/<dataset>/<dataset>.search``, beside the ``.inter`` file, or
config ``search_path``) holds one search per line: the user, the query text, the item the search
led to, and when::

    user_id:token<TAB>query:text<TAB>item_id:token<TAB>timestamp:float

(``timestamp`` is optional; the query is free text without tabs or line breaks.) Converters of
real query logs write it; :func:`queries_from_items` builds one for datasets without query logs.

Queries from item metadata follow the product-search protocol of Van Gysel et al. (2016) and Ai
et al. (2017), who form queries from an item's category path: here, every interaction
``(user, item)`` becomes the search ``(user, query, item)`` whose query is the item's category
tokens (MovieLens genres, Amazon categories) in lower case, e.g. "comedy romance". Such queries
are shared by many items and never name the item (no unique titles). Items with many categories
(a Last.fm artist's dozens of tags, whose full list would name the artist alone) give each search
one of their categories instead (``pick: one``), and categories of too few items can be left out
(``min_items``).

Splits: a search belongs to the split of its interaction ``(user, item)``: train, valid or test as
RecBole split the interactions, so the search and recommendation tasks never see a test pair in
training. Searches whose pair is in no split (a user or item RecBole filtered out) are dropped.
"""

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_mm.files import replace_atomically

logger = logging.getLogger(__name__)
COLUMNS = ("user_id", "query", "item_id", "timestamp")
HEADER = ("user_id:token", "query:text", "item_id:token", "timestamp:float")


class SearchError(ValueError):
    """A ``.search`` file that cannot be read, or search settings that do not fit the data."""


def clean_query(text):
    """``text`` on one line, lower case, single spaces (str)."""
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def write_search_file(path, frame):
    """Write ``frame`` (columns user_id, query, item_id[, timestamp]) as a ``.search`` file.

    Returns:
        Path: ``path``.
    """
    missing = [c for c in COLUMNS[:3] if c not in frame.columns]
    if missing:
        raise SearchError(f"search rows for {path} lack the column(s) {missing}")
    has_time = "timestamp" in frame.columns
    header = HEADER if has_time else HEADER[:3]
    queries = [clean_query(q) for q in frame["query"]]

    def write(handle):
        handle.write("\t".join(header) + "\n")
        times = frame["timestamp"] if has_time else [None] * len(frame)
        for user, query, item, time in zip(frame["user_id"], queries, frame["item_id"], times):
            cells = [str(user), query, str(item)] + ([] if time is None else [repr(float(time))])
            handle.write("\t".join(cells) + "\n")

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return replace_atomically(path, write)


def read_search_file(path):
    """Read a ``.search`` file.

    Returns:
        pandas.DataFrame: user_id (str), query (str), item_id (str), timestamp (float, NaN if
        the file has none).

    Raises:
        SearchError: naming the file, line and field that is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise SearchError(f"search file {path} does not exist")
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if tuple(header) not in (HEADER, HEADER[:3]):
            raise SearchError(
                f"{path}, line 1: the header must be {' TAB '.join(HEADER)} (timestamp optional), "
                f"got {' TAB '.join(header)}"
            )
        rows = []
        for number, line in enumerate(handle, start=2):
            cells = line.rstrip("\n").split("\t")
            if cells == [""]:
                continue
            if len(cells) != len(header):
                raise SearchError(
                    f"{path}, line {number}: {len(cells)} tab-separated fields, expected "
                    f"{len(header)} ({', '.join(header)}); a query must not contain tabs"
                )
            if not cells[1].strip():
                raise SearchError(f"{path}, line {number}: empty query")
            if len(cells) == 4:
                try:
                    cells[3] = float(cells[3])
                except ValueError:
                    raise SearchError(
                        f"{path}, line {number}: timestamp {cells[3]!r} is not a number"
                    ) from None
            rows.append(cells)
    frame = pd.DataFrame(rows, columns=list(COLUMNS[: len(header)]))
    if "timestamp" not in frame.columns:
        frame["timestamp"] = np.nan
    frame["query"] = [clean_query(q) for q in frame["query"]]
    return frame


RECIPE_KEYS = ("field", "separator", "pick", "min_items", "seed")


def _item_categories(folder, field, separator):
    """{item token: [category, ...]} from ``field`` of ``DATASET.item`` (a token or token_seq
    field) or of ``DATASET.text.tsv`` (free text, split at ``separator`` when given)."""
    from recbole_mm.dataset_tools.atomic import read_atomic, read_text_table

    item_path, text_path = folder / f"{folder.name}.item", folder / f"{folder.name}.text.tsv"
    choices = []
    if item_path.is_file():
        items, types = read_atomic(item_path)
        if types.get(field) in ("token", "token_seq"):
            values = items[field] if types[field] == "token_seq" else [[v] for v in items[field]]
            return {
                str(item): [str(t).replace("_", " ") for t in tokens]
                for item, tokens in zip(items["item_id"], values)
                if isinstance(tokens, (list, tuple, np.ndarray))
            }
        choices += [f for f, kind in types.items() if kind in ("token", "token_seq") and f != "item_id"]
    if text_path.is_file():
        table = read_text_table(text_path)
        if field in table.columns[1:]:
            return {
                str(item): [part for part in (text.split(separator) if separator else [text]) if part.strip()]
                for item, text in zip(table[table.columns[0]], table[field])
            }
        choices += list(table.columns[1:])
    raise SearchError(
        f"cannot build queries from field {field!r}: it is neither a token / token_seq field of "
        f"{item_path.name} nor a column of {text_path.name} in {folder}; choose one of {choices}"
    )


def _read_interactions(folder):
    """user_id, item_id (str) and timestamp (float or NaN) of ``DATASET.inter``, or of the
    benchmark files ``DATASET.<part>.inter`` (train/valid/test) when there is no single file."""
    from recbole_mm.dataset_tools.atomic import read_atomic

    paths = [folder / f"{folder.name}.inter"]
    if not paths[0].is_file():
        paths = sorted(folder.glob(f"{folder.name}.*.inter"))
    if not paths:
        raise SearchError(f"cannot build queries: {folder} holds no {folder.name}.inter (nor benchmark .inter files)")
    frames = []
    for path in paths:
        inter, types = read_atomic(path)
        frames.append(pd.DataFrame({
            "user_id": inter["user_id"].astype(str),
            "item_id": inter["item_id"].astype(str),
            "timestamp": inter["timestamp"].astype(float) if "timestamp" in types else np.nan,
        }))
    return pd.concat(frames, ignore_index=True)


def queries_from_items(folder, field, separator=None, pick="all", min_items=1, seed=0):
    """Searches made from item metadata: one per interaction, the query from the item's categories.

    Args:
        folder (Path): the dataset folder (``DATASET.inter`` or its benchmark ``.inter`` files, and
            ``DATASET.item`` or ``DATASET.text.tsv``).
        field (str): the item's categories: a ``token`` / ``token_seq`` field of ``DATASET.item``
            (genres, categories), or a column of ``DATASET.text.tsv`` (e.g. lastfm-2k's tags).
        separator (str or None): splits a ``text.tsv`` column into categories (lastfm-2k: ",").
        pick (str): ``all``: the query is all the item's categories ("comedy romance");
            ``one``: each search draws one of them uniformly (items with many tags, whose full tag
            list would name the item alone).
        min_items (int): only categories carried by at least this many items of the interactions
            make queries (a category of one item would name it); items left with none get no
            searches.
        seed (int): seed of the draws of ``pick: one``.

    Returns:
        pandas.DataFrame: user_id, query, item_id, timestamp (NaN without timestamps).
    """
    if pick not in ("all", "one"):
        raise SearchError(f"search_recipe pick {pick!r}: choose 'all' or 'one'")
    folder = Path(folder)
    frame = _read_interactions(folder)
    categories = {
        item: list(dict.fromkeys(clean_query(c) for c in values))
        for item, values in _item_categories(folder, field, separator).items()
    }
    used = set(frame["item_id"])
    counts = pd.Series([c for item, values in categories.items() if item in used for c in values]).value_counts()
    shared = set(counts.index[counts >= min_items])
    categories = {item: [c for c in values if c in shared] for item, values in categories.items()}
    categories = {item: values for item, values in categories.items() if values}
    if pick == "all":
        frame["query"] = frame["item_id"].map({item: " ".join(values) for item, values in categories.items()})
    else:
        rng = np.random.default_rng(seed)
        frame["query"] = [
            values[rng.integers(len(values))] if values else None
            for values in (categories.get(item, []) for item in frame["item_id"])
        ]
    kept = frame.dropna(subset=["query"])
    logger.info(
        "Built %d searches from %s (%d distinct queries; %d interactions with items without %s%s)",
        len(kept), field, kept["query"].nunique(), len(frame) - len(kept), field,
        f" carried by >= {min_items} items" if min_items > 1 else "",
    )
    return kept[list(COLUMNS)].reset_index(drop=True)


def search_path(config):
    """The ``.search`` file of the run (Path): ``search_path``, or ``<dataset>.search`` in the
    dataset's folder (RecBole's final ``data_path``)."""
    if config["search_path"]:
        return Path(config["search_path"]).expanduser()
    return Path(config["data_path"]) / f"{config['dataset']}.search"


def ensure_search_file(config):
    """The run's ``.search`` file, built first from ``search_recipe`` if it is missing (Path)."""
    path = search_path(config)
    if path.is_file():
        return path
    recipe = config["search_recipe"]
    if not recipe or not recipe.get("field"):
        raise SearchError(
            f"no search file {path}: write one (user_id, query, item_id[, timestamp]), or set "
            "search_recipe: {field: <item field of categories/genres/tags>} to build queries "
            "from item metadata"
        )
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise SearchError(f"search_recipe: unknown key(s) {unknown}; the keys are {list(RECIPE_KEYS)}")
    write_search_file(path, queries_from_items(Path(config["data_path"]), **recipe))
    return path


class SearchLog:
    """A dataset's searches in RecBole's internal ids.

    Args:
        config (Config): reads ``search_path``, ``search_recipe``, ``data_path``, ``dataset``.
        dataset (Dataset): any split of the dataset (its token -> id maps are shared).

    Attributes:
        queries (list of str): the distinct query texts; ``query`` ids index it.
        users, query, items (numpy.ndarray): int64 [n_searches].
    """

    def __init__(self, config, dataset):
        path = ensure_search_file(config)
        frame = read_search_file(path)
        uid, iid = dataset.uid_field, dataset.iid_field
        user_ids, item_ids = dataset.field2token_id[uid], dataset.field2token_id[iid]
        users = frame["user_id"].map(user_ids)
        items = frame["item_id"].map(item_ids)
        known = users.notna() & items.notna()
        if not known.any():
            raise SearchError(
                f"{path}: none of its {len(frame)} searches names a user and an item of "
                f"{config['dataset']}; is it the search file of this dataset?"
            )
        if not known.all():
            logger.info("%s: %d searches of users/items not in the data skipped", path, int((~known).sum()))
        frame = frame[known]
        self.path = path
        self.n_items = dataset.item_num
        self.queries = sorted(frame["query"].unique())
        query_ids = {q: i for i, q in enumerate(self.queries)}
        # copies: pandas 3 hands out read-only arrays, which torch tensors made from them would share
        self.users = users[known].to_numpy(dtype=np.int64, copy=True)
        self.items = items[known].to_numpy(dtype=np.int64, copy=True)
        self.query = frame["query"].map(query_ids).to_numpy(dtype=np.int64, copy=True)

    def split(self, split_dataset):
        """Indices of the searches whose (user, item) is an interaction of ``split_dataset``.

        Returns:
            numpy.ndarray: int64 indices into ``users`` / ``query`` / ``items``.
        """
        inter = split_dataset.inter_feat
        pairs = inter[split_dataset.uid_field].numpy() * self.n_items + inter[split_dataset.iid_field].numpy()
        return np.flatnonzero(np.isin(self.users * self.n_items + self.items, pairs))
