"""RecBole atomic files: a validating writer and a reader, plus the free-text side table.

An atomic file ``<dir>/<dataset>.<suffix>`` (suffix ``inter``, ``item``, ``user``, or a benchmark
part such as ``train.inter``) is UTF-8 text, one record per line, fields separated by tabs, with a
header of ``field:type`` cells. Types: ``token`` (one categorical value), ``token_seq``
(categorical values separated by single spaces), ``float``, ``float_seq`` (numbers separated by
spaces).

RecBole 1.2.1 reads these files with pandas' python engine (``Dataset._load_feat``): its quote
character is ``"``, so a value starting with ``"`` swallows the following tabs and lines, and
sequences are split on spaces. :func:`write_atomic` therefore refuses, with the file, row and
column:

- tabs, newlines, carriage returns and double quotes in any value;
- empty or whitespace-containing items in a ``token_seq`` (use :func:`as_token`);
- floats that are not finite numbers;
- missing columns, unknown types, and repeated keys (``.user`` / ``.item``: the first column;
  ``.inter``: the first two columns, the user and the item).

RecBole has no string type, so free text (titles, descriptions, tag sentences) does not belong in
an atomic file: :func:`write_text_table` writes it to a plain tab-separated side table that
RecBole ignores and the feature encoders read. Every file here appears complete or not at all:
it is written under a temporary name in its own folder, then renamed over the target.
"""

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_mm.files import replace_atomically

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
_FORBIDDEN = re.compile(r'[\t\n\r"]')
_WHITESPACE = re.compile(r"\s+")


class AtomicFileError(ValueError):
    """Data that cannot be written as (or read from) a RecBole atomic file."""


def _is_missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_token(value):
    """A categorical value made safe as a token (str): trimmed, whitespace runs -> ``_``,
    ``"`` -> ``'``; ``""`` for missing values. ``"seen live"`` -> ``"seen_live"``.
    """
    if _is_missing(value):
        return ""
    return _WHITESPACE.sub("_", str(value).strip()).replace('"', "'")


def _default_key(path, types):
    columns = list(types)
    suffix = Path(path).name.rsplit(".", 1)[-1]
    if suffix in ("user", "item"):
        return columns[:1]
    if suffix == "inter":
        return columns[:2]
    return []


def _where(path, frame, row, column, kind):
    first = frame.columns[0]
    return (
        f"{path}: row {row + 1} (file line {row + 2}, {first}={frame[first].iloc[row]!r}), "
        f"column {column!r} ({kind})"
    )


def _token_cells(path, frame, column, kind, required):
    values = frame[column]
    cells = values.where(values.notna(), "").astype(str)
    bad = cells.str.contains(_FORBIDDEN) | ((cells == "") & required)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        problem = "is empty" if cells.iloc[row] == "" else "contains a tab, newline or double quote"
        raise AtomicFileError(
            f"{_where(path, frame, row, column, kind)}: value {cells.iloc[row]!r} {problem}. "
            "Clean categorical values with dataset_tools.atomic.as_token; keep free text in the "
            "text side table (write_text_table)."
        )
    return cells.tolist()


def _not_a_number(path, frame, row, column, kind, value):
    return AtomicFileError(
        f"{_where(path, frame, row, column, kind)}: {value!r} is not a finite number. "
        "Drop or repair the row before writing."
    )


def _float_cell(path, frame, row, column, kind, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise _not_a_number(path, frame, row, column, kind, value)
    return repr(number)


def _float_cells(path, frame, column, kind):
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        raise _not_a_number(path, frame, int(bad[0]), column, kind, values.iloc[bad[0]])
    return [repr(number) for number in numbers.tolist()]


def _seq_cells(path, frame, column, kind):
    cells = []
    for row, sequence in enumerate(frame[column].tolist()):
        if _is_missing(sequence):
            cells.append("")
            continue
        if isinstance(sequence, str) or not hasattr(sequence, "__iter__"):
            raise AtomicFileError(
                f"{_where(path, frame, row, column, kind)}: expected a list of values, got "
                f"{sequence!r}."
            )
        if kind == "float_seq":
            cells.append(" ".join(_float_cell(path, frame, row, column, kind, v) for v in sequence))
            continue
        items = [str(item) for item in sequence]
        for item in items:
            if item == "" or _WHITESPACE.search(item) or '"' in item:
                raise AtomicFileError(
                    f"{_where(path, frame, row, column, kind)}: item {item!r} is empty or holds "
                    "whitespace or a double quote; token_seq items are separated by spaces. "
                    "Clean them with dataset_tools.atomic.as_token."
                )
        cells.append(" ".join(items))
    return cells


def write_atomic(path, frame, types, key=None):
    """Write ``frame`` as the RecBole atomic file ``path`` (``<dir>/<dataset>.<suffix>``).

    Args:
        path (str or Path): target file; its folder must exist.
        frame (pandas.DataFrame): one row per record. ``token`` columns hold scalars (written with
            ``str``; missing values -> empty cells), ``token_seq`` / ``float_seq`` columns hold
            lists (or arrays) of values, ``float`` columns numbers.
        types (dict): {column: atomic type}, in the order of the file's columns; other columns of
            ``frame`` are not written.
        key (list of str or None): columns that must be unique together and non-empty; default:
            the first column of a ``.user`` / ``.item``, the first two (user, item) of an
            ``.inter``, none otherwise. ``[]`` allows repeated keys (e.g. repeated interactions).

    Returns:
        Path: ``path``.

    Raises:
        AtomicFileError: naming the file, the row and the column of the first invalid value.
    """
    path = Path(path)
    if not types:
        raise AtomicFileError(f"{path}: no columns to write.")
    for column, kind in types.items():
        if kind not in ATOMIC_TYPES:
            raise AtomicFileError(
                f"{path}: column {column!r} has type {kind!r}; use one of "
                f"{', '.join(ATOMIC_TYPES)}."
            )
        if not column or _WHITESPACE.search(column) or ":" in column or '"' in column:
            raise AtomicFileError(f"{path}: column name {column!r} must be a word without ':'.")
    missing = [column for column in types if column not in frame.columns]
    if missing:
        raise AtomicFileError(
            f"{path}: columns {missing} are missing from the data (it has {list(frame.columns)})."
        )
    frame = frame.reset_index(drop=True)
    key = _default_key(path, types) if key is None else list(key)
    columns = []
    for column, kind in types.items():
        if kind == "token":
            columns.append(_token_cells(path, frame, column, kind, required=column in key))
        elif kind == "float":
            columns.append(_float_cells(path, frame, column, kind))
        else:
            columns.append(_seq_cells(path, frame, column, kind))
    if key:
        repeated = frame.duplicated(key, keep=False).to_numpy()
        if repeated.any():
            first, second = np.flatnonzero(repeated)[:2]
            values = {column: frame[column].iloc[first] for column in key}
            raise AtomicFileError(
                f"{path}: rows {first + 1} and {second + 1} (file lines {first + 2} and "
                f"{second + 2}) repeat the key {values}; each key may appear once. Remove the "
                "repeated rows (or pass key=[] where repeats are meaningful)."
            )
    header = "\t".join(f"{column}:{kind}" for column, kind in types.items())

    def write(handle):
        handle.write(header + "\n")
        for cells in zip(*columns):
            handle.write("\t".join(cells) + "\n")

    return replace_atomically(path, write)


def read_atomic(path):
    """Read an atomic file as RecBole would parse its values.

    Returns:
        tuple: (pandas.DataFrame with one column per field: ``token`` -> str, ``float`` -> float,
        ``token_seq`` -> list of str, ``float_seq`` -> list of float; dict {field: type}).
    """
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    types = {}
    for cell in header:
        field, _, kind = cell.partition(":")
        if kind not in ATOMIC_TYPES:
            raise AtomicFileError(f"{path}, line 1: header cell {cell!r} is not 'field:type'.")
        types[field] = kind
    frame = pd.read_csv(
        path,
        sep="\t",
        dtype=str,
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        na_filter=False,
    )
    frame.columns = list(types)
    for field, kind in types.items():
        values = frame[field].tolist()
        if kind == "float":
            frame[field] = [float(v) if v else math.nan for v in values]
        elif kind == "token_seq":
            frame[field] = [[t for t in v.split(" ") if t] for v in values]
        elif kind == "float_seq":
            frame[field] = [[float(t) for t in v.split(" ") if t] for v in values]
    return frame, types


def write_text_table(path, frame):
    """Write free text per record: a tab-separated table with a header of plain column names.

    The first column holds the record's token (e.g. ``item_id``), each other column one text
    field; runs of whitespace (tabs and newlines included) become one space so that a record is one
    line; a field holding ``"`` is quoted CSV-style (``""`` inside). ``read_text_table`` or
    ``pandas.read_csv(path, sep="\\t", dtype=str, keep_default_na=False)`` reads it back.
    """
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    for column in text.columns:
        text[column] = text[column].str.replace(_WHITESPACE, " ", regex=True).str.strip()
    return replace_atomically(
        path, lambda handle: text.to_csv(handle, sep="\t", index=False, lineterminator="\n")
    )


def read_text_table(path):
    """The table written by :func:`write_text_table` (pandas.DataFrame of str; missing -> "")."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
