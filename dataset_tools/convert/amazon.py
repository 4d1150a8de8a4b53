"""``convert amazon``: Amazon review data (McAuley et al.), in two layouts.

Review JSON lines, ``--src`` a file (gzip when it ends in ``.gz``), e.g. 2014's
``reviews_Baby_5.json.gz`` or 2018's ``Baby_5.json.gz``: one review per line with ``reviewerID``,
``asin``, ``overall`` (the rating) and ``unixReviewTime`` -> user_id, item_id, rating, timestamp.
``--meta FILE``: the metadata lines (2014: Python dict literals, read with ``ast.literal_eval``;
2018: JSON) with ``asin`` and any of ``title``, ``description`` (a text or a list of texts),
``categories`` (2014: a list of category paths) or ``category`` (2018: a list), ``imUrl`` (2014)
or ``imageURLHighRes`` / ``imageURL`` (2018: lists) -> ``categories:token_seq`` in
``DATASET.item``; title, description and image_url in ``DATASET.text.tsv``. Reviewed items
without metadata get none (a note counts them).

LATTICE / FREEDOM / MMRec split, ``--src`` the folder: ``train.json``, ``val.json``,
``test.json`` ({user index: [item index, ...]}), ``item2id.json`` ({ASIN: item index}) and
optionally ``user2id.json`` ({reviewer id: user index}). The indices are the tokens (so row r of
a feature matrix is item token r, as in MMRec); ``--keep-split`` keeps the split; the ASIN of each
item goes to the text table; ``*.npy`` matrices in the folder are checked and stored in the
feature store as for ``mmrec``.
"""

import ast
import json
from pathlib import Path

import pandas as pd

from recbole_mm.dataset_tools.atomic import as_token
from recbole_mm.dataset_tools.convert.common import (
    ConversionError,
    Source,
    npy_features,
    numbered_lines,
    require_file,
    to_numbers,
    unique_rows,
)

NAME = "amazon"
HELP = "Amazon reviews: 2014/2018 JSON lines (+ --meta), or the LATTICE/FREEDOM JSON split folder"
SPLIT_FILES = {"train": "train.json", "valid": "val.json", "test": "test.json"}
REVIEW_KEYS = {"reviewerID": "user_id", "asin": "item_id", "overall": "rating"}


def add_arguments(parser):
    """--meta (see the module docstring)."""
    parser.add_argument("--meta", help="item metadata lines (title, description, categories, ...)")


def load(args):
    """Read the review file or LATTICE split folder ``args.src`` into a Source."""
    src = Path(args.src)
    if src.is_dir():
        if args.meta:
            raise ConversionError("--meta applies to review files, not to a LATTICE split folder.")
        return _load_split(src)
    source = _load_reviews(require_file(src, "review file"))
    if args.meta:
        _attach_meta(source, require_file(args.meta, "metadata file"))
    return source


# ------------------------------------------------------------------------------ review JSON lines


def _records(path):
    """(line number, dict) per line: JSON, or a Python dict literal (2014 metadata)."""
    for number, line in numbered_lines(path):
        try:
            record = json.loads(line)
        except ValueError:
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                record = None
        if not isinstance(record, dict):
            raise ConversionError(
                f"{path}, line {number}: not a JSON object (nor a Python dict literal): "
                f"{line[:80]!r}. Fix or remove the line."
            )
        yield number, record


def _load_reviews(path):
    keys = dict(REVIEW_KEYS)
    rows, numbers = [], []
    for number, record in _records(path):
        if not numbers and "unixReviewTime" in record:
            keys["unixReviewTime"] = "timestamp"
        missing = [key for key in keys if key not in record]
        if missing:
            raise ConversionError(
                f"{path}, line {number}: the review has no {missing}; every line needs "
                f"{list(keys)}. Fix or remove the line."
            )
        rows.append([record[key] for key in keys])
        numbers.append(number)
    if not rows:
        raise ConversionError(f"{path}: no reviews in the file.")
    frame = pd.DataFrame(rows, columns=list(keys.values()), index=pd.Index(numbers, name="line"))
    inter = frame[["user_id", "item_id"]].astype(str)
    for column in ("rating", "timestamp"):
        if column in frame:
            inter[column] = to_numbers(frame, column, path)
    return Source(inter=inter, inputs=[path])


def _texts(value):
    """A text, or a list of texts joined by spaces (2018 descriptions are lists)."""
    if isinstance(value, list):
        return " ".join(str(part) for part in value)
    return "" if value is None else str(value)


def _categories(record):
    """Category tokens of a metadata record (2014 paths flattened, 2018 list), first seen first;
    a tuple, so that repeated records compare equal."""
    values = record.get("categories") or record.get("category") or []
    flat = [value for path in values for value in (path if isinstance(path, list) else [path])]
    return tuple(dict.fromkeys(token for token in map(as_token, flat) if token))


def _image(record):
    if record.get("imUrl"):
        return str(record["imUrl"])
    urls = record.get("imageURLHighRes") or record.get("imageURL") or []
    return str(urls[0]) if urls else ""


def _attach_meta(source, path):
    rows, numbers = [], []
    for number, record in _records(path):
        if "asin" not in record:
            raise ConversionError(f"{path}, line {number}: the record has no 'asin'.")
        rows.append(
            [
                str(record["asin"]),
                _texts(record.get("title")),
                _texts(record.get("description")),
                _image(record),
                _categories(record),
            ]
        )
        numbers.append(number)
    columns = ["item_id", "title", "description", "image_url", "categories"]
    meta = pd.DataFrame(rows, columns=columns, index=pd.Index(numbers, name="line"))
    meta = unique_rows(meta, ["item_id"], path)
    source.inputs.append(path)
    source.text = meta[columns[:4]]
    if meta["categories"].map(len).any():
        source.item = meta[["item_id", "categories"]]
        source.item_types = {"item_id": "token", "categories": "token_seq"}
    unknown = len(set(source.inter["item_id"]) - set(meta["item_id"]))
    if unknown:
        source.notes.append(f"{unknown} reviewed items have no metadata in {path.name}")


# ------------------------------------------------------------------------- LATTICE / FREEDOM split


def _read_json_object(path):
    try:
        with open(require_file(path), encoding="utf-8") as handle:
            data = json.load(handle)
    except (ValueError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: not valid UTF-8 JSON ({error}).") from error
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object.")
    return data


def _index_map(path):
    """{index (str): original id} of a ``{original id: index}`` file; indices must be distinct
    non-negative integers."""
    by_index = {}
    for original, index in _read_json_object(path).items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ConversionError(f"{path}: key {original!r} has {index!r}, not an index >= 0.")
        if str(index) in by_index:
            raise ConversionError(
                f"{path}: keys {by_index[str(index)]!r} and {original!r} share the index {index}; "
                "each index must name one id."
            )
        by_index[str(index)] = original
    return by_index


def _load_split(folder):
    items_path = folder / "item2id.json"
    users_path = folder / "user2id.json"
    asins = _index_map(items_path)
    users = _index_map(users_path) if users_path.is_file() else None
    columns = {"user_id": [], "item_id": [], "split": []}
    for part, name in SPLIT_FILES.items():
        path = folder / name
        for user, item_list in _read_json_object(path).items():
            if users is not None and user not in users:
                raise ConversionError(
                    f"{path}, user {user!r}: not an index of {users_path.name}. Remove the entry "
                    "or add the user there."
                )
            if not isinstance(item_list, list):
                raise ConversionError(f"{path}, user {user!r}: expected a list of item indices.")
            for item in item_list:
                if str(item) not in asins or isinstance(item, bool):
                    raise ConversionError(
                        f"{path}, user {user!r}: item {item!r} is not an index of "
                        f"{items_path.name}. Remove it or add the item there."
                    )
            columns["user_id"] += [user] * len(item_list)
            columns["item_id"] += [str(item) for item in item_list]
            columns["split"] += [part] * len(item_list)
    inputs = [folder / name for name in SPLIT_FILES.values()] + [items_path]
    if users is not None:
        inputs.append(users_path)
    text = pd.DataFrame({"item_id": list(asins), "asin": list(asins.values())})
    n_items = max(map(int, asins)) + 1 if asins else 0
    features = npy_features(list(folder.glob("*.npy")), n_items, items_path)
    return Source(inter=pd.DataFrame(columns), inputs=inputs, text=text, features=features)
