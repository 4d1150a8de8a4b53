"""``convert table``: any interaction table plus a column mapping (bring your own data).

``--src`` is a file with a header line: CSV (``.csv``), TSV (``.tsv``, ``.tab``, ``.txt``),
either possibly gzipped (``.csv.gz``), or Parquet (``.parquet``, ``.pq``); ``--sep`` overrides the
separator of a text file. Text files are read CSV-style: fields may be quoted.

Columns: ``--user-col`` and ``--item-col`` (required), ``--rating-col`` (numbers) and
``--time-col`` (numbers, or dates that ``pandas.to_datetime`` reads, stored as seconds since
1970-01-01 UTC).

Query log: ``--query-col`` names a column of search queries. Each line with a query is also a
search that led to its interaction: ``DATASET.search`` (user, query, item[, timestamp]; see
:mod:`recbole_mm.search.data`) gets one row per such line, kept when its interaction survives the
filters. Lines without a query are interactions only.

Item side table: ``--item-table FILE`` (same formats), keyed by ``--item-id-col`` (default: the
``--item-col`` name). ``--item-text-cols title,description`` go to ``DATASET.text.tsv``;
``--item-token-cols genres,brand`` go to ``DATASET.item`` as ``token_seq`` columns, each value
split on ``--token-sep`` (default ``|``) into tokens. Every item of the interactions must be in the
item table; identical repeated rows there are dropped, conflicting ones are an error.
"""

import pandas as pd

from recbole_mm.dataset_tools.atomic import as_token
from recbole_mm.dataset_tools.convert.common import (
    ConversionError,
    Source,
    check_known,
    read_delimited,
    require_file,
    to_numbers,
    unique_rows,
    where,
)

NAME = "table"
HELP = "any CSV/TSV/Parquet table with --user-col/--item-col (+ an item table)"
SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
PARQUET = (".parquet", ".pq")


def add_arguments(parser):
    """The column mapping and the item table options (see the module docstring)."""
    parser.add_argument("--user-col", required=True, help="column of the user ids")
    parser.add_argument("--item-col", required=True, help="column of the item ids")
    parser.add_argument("--rating-col", help="column of the ratings (numbers)")
    parser.add_argument("--time-col", help="column of the times (numbers or dates)")
    parser.add_argument("--query-col", help="column of search queries (a query log: DATASET.search)")
    parser.add_argument("--sep", help="field separator of text files (default: by file suffix)")
    parser.add_argument("--item-table", help="item side table (CSV/TSV/Parquet with a header)")
    parser.add_argument("--item-id-col", help="item id column of --item-table (default --item-col)")
    parser.add_argument("--item-text-cols", help="comma-separated free-text columns")
    parser.add_argument("--item-token-cols", help="comma-separated categorical list columns")
    parser.add_argument("--token-sep", default="|", help="separator inside --item-token-cols")


def read_table(path, sep=None, required=()):
    """A CSV/TSV/Parquet file with a header as a frame of str (missing values -> ""), indexed by
    line number (text) or 1-based row number (Parquet)."""
    path = require_file(path)
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in PARQUET:
        try:
            frame = pd.read_parquet(path)
        except ImportError as error:
            raise ConversionError(f"{path}: reading Parquet needs pyarrow ({error}).") from error
        frame = frame.astype(object).where(frame.notna(), "").astype(str)
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
        missing = [column for column in required if column not in frame.columns]
        if missing:
            raise ConversionError(
                f"{path}: columns {missing} are missing; it has {list(frame.columns)}."
            )
        return frame
    if sep is None:
        plain = [suffix for suffix in suffixes if suffix != ".gz"]
        if not plain or plain[-1] not in SEPARATORS:
            raise ConversionError(
                f"{path}: unknown table type; name it .csv, .tsv or .parquet, or pass --sep."
            )
        sep = SEPARATORS[plain[-1]]
    return read_delimited(path, sep, required=required, quoted=True)


def _timestamps(frame, column, path):
    """Seconds since 1970 UTC: the numbers of ``column``, or its dates."""
    if pd.to_numeric(frame[column], errors="coerce").notna().all():
        return to_numbers(frame, column, path)
    dates = pd.to_datetime(frame[column], errors="coerce", utc=True, format="ISO8601")
    if dates.isna().any():  # not all ISO 8601: let pandas guess each value's format
        dates = pd.to_datetime(frame[column], errors="coerce", utc=True, format="mixed")
    if dates.isna().any():
        position = int(dates.isna().to_numpy().argmax())
        raise ConversionError(
            f"{where(path, frame, position)}: {column} {frame[column].iloc[position]!r} is "
            "neither a number nor a date in the column's format. Fix or remove the line."
        )
    return (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def _columns(value):
    return [column for column in value.split(",") if column] if value else []


def load(args):
    """Read the table ``args.src`` (+ ``--item-table``) into a Source."""
    optional = (args.rating_col, args.time_col, args.query_col)
    columns = [args.user_col, args.item_col] + [c for c in optional if c]
    frame = read_table(args.src, args.sep, required=columns)
    path = require_file(args.src)
    inter = pd.DataFrame({"user_id": frame[args.user_col], "item_id": frame[args.item_col]})
    for column, name in ((args.user_col, "user"), (args.item_col, "item")):
        empty = (frame[column] == "").to_numpy()
        if empty.any():
            raise ConversionError(
                f"{where(path, frame, int(empty.argmax()))}: the {name} id ({column}) is empty. "
                "Fill it in or remove the line."
            )
    if args.rating_col:
        inter["rating"] = to_numbers(frame, args.rating_col, path)
    if args.time_col:
        inter["timestamp"] = _timestamps(frame, args.time_col, path)
    source = Source(inter=inter, inputs=[path])
    if args.query_col:
        searched = (frame[args.query_col].str.strip() != "").to_numpy()
        if not searched.any():
            raise ConversionError(f"{path}: the query column {args.query_col} is empty on every line.")
        search = inter[searched].copy()
        search["query"] = frame[args.query_col].to_numpy()[searched]
        source.search = search
    text_columns = _columns(args.item_text_cols)
    token_columns = _columns(args.item_token_cols)
    if not args.item_table:
        if text_columns or token_columns:
            raise ConversionError("--item-text-cols/--item-token-cols need --item-table FILE.")
        return source
    _attach_items(source, args, frame, path, text_columns, token_columns)
    return source


def _attach_items(source, args, frame, path, text_columns, token_columns):
    item_path = require_file(args.item_table)
    id_column = args.item_id_col or args.item_col
    items = read_table(item_path, args.sep, required=[id_column] + text_columns + token_columns)
    items = unique_rows(items[[id_column] + text_columns + token_columns], [id_column], item_path)
    check_known(frame, args.item_col, set(items[id_column]), path, item_path.name)
    source.inputs.append(item_path)
    ids = items[id_column].rename("item_id")
    if text_columns:
        source.text = pd.concat([ids, items[text_columns]], axis=1)
    if token_columns:
        lists = {
            column: [
                [as_token(part) for part in value.split(args.token_sep) if part.strip()]
                for value in items[column]
            ]
            for column in token_columns
        }
        source.item = pd.DataFrame({"item_id": ids.to_numpy(), **lists})
        source.item_types = {"item_id": "token", **dict.fromkeys(token_columns, "token_seq")}
