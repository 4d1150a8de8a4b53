"""``convert lightgcn-txt``: the "LightGCN text" layout (LightGCN, NGCF, CoLaKG releases).

``--src`` is the folder holding ``train.txt`` and ``test.txt`` (and ``valid.txt`` when the release
has one): one line per user, ``user item item ...``, integers separated by whitespace (a user with
no item on a line contributes nothing). These interactions are implicit: no rating, no time.
``--keep-split`` keeps train/test; without a ``valid.txt``, ``--valid-from-train`` of each user's
training items become the validation part.

``user_map.txt`` / ``item_map.txt`` (``original_id internal_id`` per line, an optional header such
as LightGCN's ``org_id remap_id``), when present, turn the internal ids into the original ones,
which become the tokens; every id of the interaction files must be in its map. Without a map the
internal ids are the tokens.

Item side data, joined on the original item ids (so the maps are needed):

- ``--movies FILE``: MovieLens ``movies.dat`` (``id::title::genres``) -> ``genres:token_seq`` and
  ``year:token`` in ``DATASET.item``, ``title`` in ``DATASET.text.tsv``;
- ``--item-json FILE``: a JSON object {original item id: text} (e.g. CoLaKG's
  ``llm_response_item.json``) -> a text column named by ``--item-json-field`` (default
  ``description``).

Items without side data keep none (a note counts them).
"""

import json
from pathlib import Path

import pandas as pd

from recbole_mm.dataset_tools.convert.common import (
    ConversionError,
    Source,
    numbered_lines,
    read_delimited,
    require_file,
    to_numbers,
    unique_rows,
)
from recbole_mm.dataset_tools.convert.movielens import read_movies

NAME = "lightgcn-txt"
HELP = "LightGCN text layout: train.txt/test.txt lines 'user item item ...' (+ id maps)"
PART_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}


def add_arguments(parser):
    """--movies, --item-json, --item-json-field (see the module docstring)."""
    parser.add_argument("--movies", help="MovieLens movies.dat: titles and genres of the items")
    parser.add_argument("--item-json", help="JSON {original item id: text}")
    parser.add_argument(
        "--item-json-field", default="description", help="text column for --item-json"
    )


def _read_lists(path, part):
    """Interactions of one ``user item item ...`` file: a frame of user, item (int) and the line
    of each, indexed by line number."""
    users, items, lines = [], [], []
    for number, line in numbered_lines(path):
        values = line.split()
        ids = [int(value) if value.isdecimal() else None for value in values]
        if None in ids:
            raise ConversionError(
                f"{path}, line {number}: {values[ids.index(None)]!r} is not a non-negative "
                "integer id; lines are 'user item item ...'. Fix or remove the line."
            )
        users += [ids[0]] * (len(ids) - 1)
        items += ids[1:]
        lines += [number] * (len(ids) - 1)
    return pd.DataFrame(
        {"user": users, "item": items, "split": part}, index=pd.Index(lines, name="line")
    )


def _read_map(path):
    """{internal id: original id (str)} of ``original internal`` lines; both sides unique."""
    table = read_delimited(path, None, names=["original", "internal"])
    if len(table) and not table["internal"].iloc[0].isdigit():
        table = table.iloc[1:]  # a header line such as "org_id remap_id"
    for column in ("internal", "original"):
        table = unique_rows(table, [column], path)
    internal = to_numbers(table, "internal", path, integer=True)
    return dict(zip(internal.tolist(), table["original"]))


def _mapped(frame, column, path, map_path):
    """``frame[column]`` through the map of ``map_path`` (or as str without one)."""
    if map_path is None:
        return frame[column].astype(str)
    mapping = _read_map(map_path)
    mapped = frame[column].map(mapping)
    if mapped.isna().any():
        position = int(mapped.isna().to_numpy().argmax())
        file = path[frame["split"].iloc[position]]
        raise ConversionError(
            f"{file}, line {frame.index[position]}: {column} {frame[column].iloc[position]} is "
            f"not in {map_path.name} ({int(mapped.isna().sum())} such ids). Add it to the map or "
            "remove it from the line."
        )
    return mapped


def load(args):
    """Read the LightGCN-text folder ``args.src`` (+ optional side files) into a Source."""
    folder = Path(args.src)
    paths = {part: folder / name for part, name in PART_FILES.items()}
    if not paths["valid"].is_file():
        del paths["valid"]
    for part in ("train", "test"):
        require_file(paths[part], f"{part} file")
    frame = pd.concat([_read_lists(path, part) for part, path in paths.items()])
    maps = {name: folder / f"{name}_map.txt" for name in ("user", "item")}
    maps = {name: path if path.is_file() else None for name, path in maps.items()}
    inter = pd.DataFrame(
        {
            "user_id": _mapped(frame, "user", paths, maps["user"]).to_numpy(),
            "item_id": _mapped(frame, "item", paths, maps["item"]).to_numpy(),
            "split": frame["split"].to_numpy(),
        }
    )
    inputs = list(paths.values()) + [path for path in maps.values() if path is not None]
    source = Source(inter=inter, inputs=inputs)
    if (args.movies or args.item_json) and maps["item"] is None:
        raise ConversionError(
            f"{folder}: --movies/--item-json join on original item ids, but there is no "
            "item_map.txt to translate the internal ids."
        )
    items = pd.Series(inter["item_id"].unique(), name="item_id")
    text = pd.DataFrame({"item_id": items})
    if args.movies:
        movies = read_movies(require_file(args.movies))
        source.inputs.append(Path(args.movies))
        movies = movies[movies["item_id"].isin(set(items))]
        source.item = movies[["item_id", "genres", "year"]]
        source.item_types = {"item_id": "token", "genres": "token_seq", "year": "token"}
        text = text.merge(movies[["item_id", "title"]], on="item_id", how="left")
        _note_missing(source, len(items) - len(movies), args.movies)
    if args.item_json:
        descriptions = _read_json_texts(require_file(args.item_json), args.item_json_field)
        source.inputs.append(Path(args.item_json))
        text = text.merge(descriptions, on="item_id", how="left")
        _note_missing(source, int(text[args.item_json_field].isna().sum()), args.item_json)
    if len(text.columns) > 1:
        source.text = text.dropna(how="all", subset=list(text.columns[1:]))
    return source


def _note_missing(source, count, path):
    if count:
        source.notes.append(f"{count} items have no entry in {Path(path).name}")


def _read_json_texts(path, column):
    """``{id: text}`` JSON -> a frame of item_id, ``column``."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (ValueError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: not valid UTF-8 JSON ({error}).") from error
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object {{item id: text}}.")
    bad = next((key for key, value in data.items() if not isinstance(value, str)), None)
    if bad is not None:
        raise ConversionError(f"{path}: the value of key {bad!r} is not a string of text.")
    ids = [str(key).strip() for key in data]
    return pd.DataFrame({"item_id": ids, column: list(data.values())})
