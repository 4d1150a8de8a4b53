"""Shared machinery of the converters: options, reading raw files with their line numbers,
filtering, splitting, and writing one dataset folder all at once.

Each format module turns its raw files into a :class:`Source`; :func:`build` applies the options
every format shares and writes::

    DATA_DIR/DATASET/
      DATASET.inter                     user_id:token item_id:token [rating:float] [timestamp:float]
      DATASET.{train,valid,test}.inter  the same columns, one file per part (--split, --keep-split)
      DATASET.item, DATASET.user        categorical side features (token, token_seq, float)
      DATASET.text.tsv                  free text per item (not an atomic file, see below)
      DATASET.search                    searches (user, query, item[, time]) of a real query log
      DATASET.yaml                      RecBole dataset config: fields, load_col, benchmark_filename
      features/                         pre-computed item feature matrices, in recbole_mm's
                                        feature store (one feature set per .npy, named after it)

Tokens are the source's own ids (MMRec / LATTICE indices, MovieLens ids, ASINs, ...), never
renumbered, so that side data and feature matrices stay joinable; RecBole maps them to its internal
ids when it loads the dataset.

Free text: RecBole 1.2.1 has no string type. A ``token`` is one categorical value and a
``token_seq`` is split on spaces into a bag of categorical values, which RecBole embeds and joins
into every batch. Titles, descriptions and tag sentences therefore stay out of the atomic files:
they go to ``DATASET.text.tsv`` (:func:`recbole_mm.dataset_tools.atomic.write_text_table`: header
``item_id`` then one column per text field, one line per item, whitespace runs collapsed to one
space), which RecBole ignores and the text encoders read. Genuinely categorical multi-valued fields
(genres, categories, tag ids) go to ``DATASET.item`` as ``token_seq``, one token per value
(:func:`~recbole_mm.dataset_tools.atomic.as_token`: spaces become ``_``).

Options shared by all formats, applied in this order: ``--implicit-threshold X`` keeps interactions
with rating >= X and drops the rating column; repeated (user, item) pairs are dropped (the first
is kept); ``--kcore K`` repeatedly drops users and items with fewer than K interactions (over all
parts of a fixed split); then ``--split T,V,S --seed N`` (:func:`split_by_user`) or
``--keep-split`` (the source's own split) writes benchmark files, and neither writes one
``DATASET.inter`` for RecBole to split.
"""

import csv
import gzip
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from recbole_mm.data.features import FeatureError, FeatureStore
from recbole_mm.dataset_tools.atomic import AtomicFileError, write_atomic, write_text_table
from recbole_mm.files import replace_atomically
from recbole_mm.search.data import write_search_file

PARTS = ("train", "valid", "test")


class ConversionError(ValueError):
    """A raw dataset that cannot be converted: the message names the file, the line or field, and
    what to do."""


@dataclass
class Source:
    """What a format module read, before the shared options apply.

    Attributes:
        inter (pandas.DataFrame): one row per interaction: ``user_id``, ``item_id`` (str tokens),
            optional ``rating``, ``timestamp`` (float) and ``split`` (``train``/``valid``/``test``,
            where the source has its own split).
        inputs (list of Path): the files read, named in the dataset YAML.
        item, user (pandas.DataFrame or None): side features, first column ``item_id`` /
            ``user_id``, typed by ``item_types`` / ``user_types`` ({column: atomic type}).
        text (pandas.DataFrame or None): ``item_id`` then free-text columns (str).
        search (pandas.DataFrame or None): a query log, ``user_id``, ``query``, ``item_id`` and
            optional ``timestamp``: each search led to an interaction of ``inter``.
        features (dict): {modality: {"path", "shape", "dtype"}} of item matrices (row r = item r).
        notes (list of str): facts the user should know (missing side files, dropped rows).
    """

    inter: pd.DataFrame
    inputs: list
    item: pd.DataFrame = None
    item_types: dict = field(default_factory=dict)
    user: pd.DataFrame = None
    user_types: dict = field(default_factory=dict)
    text: pd.DataFrame = None
    search: pd.DataFrame = None
    features: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def add_common_arguments(parser):
    """The options every format takes (``--src``, ``--out``, ``--name``, filtering, splitting)."""
    parser.add_argument(
        "--src", required=True, metavar="PATH", help="raw file or folder (see the format's help)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DATA_DIR", help="the dataset goes to DATA_DIR/DATASET"
    )
    parser.add_argument(
        "--name", required=True, metavar="DATASET", help="dataset name (RecBole's --dataset)"
    )
    parser.add_argument(
        "--implicit-threshold",
        type=float,
        metavar="X",
        help="keep interactions with rating >= X as implicit positives (drops the rating column)",
    )
    parser.add_argument(
        "--kcore", type=int, metavar="K", help="repeatedly drop users/items with < K interactions"
    )
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--split",
        metavar="T,V,S",
        help="seeded random split of each user's interactions, e.g. 0.8,0.1,0.1",
    )
    split.add_argument(
        "--keep-split", action="store_true", help="keep the source's own train/valid/test split"
    )
    parser.add_argument(
        "--seed", type=int, default=2020, metavar="N", help="seed of the splits (default 2020)"
    )
    parser.add_argument(
        "--valid-from-train",
        type=float,
        default=0.1,
        metavar="F",
        help="with --keep-split on a source without a validation part: the fraction of each "
        "user's training interactions moved to validation (default 0.1)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace DATA_DIR/DATASET if it exists"
    )


# ----------------------------------------------------------------------------------------- reading


def require_file(path, what="file"):
    """``path`` as a Path, or a ConversionError when it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(
            f"{path}: no such {what}. Check --src and the files the format expects."
        )
    return path


def _decoded_lines(path):
    """Lines of ``path`` (gzip when it ends in ``.gz``) with their endings: UTF-8, or Latin-1 for
    the lines that are not (older GroupLens and HetRec files)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for raw in handle:
                try:
                    yield raw.decode("utf-8-sig")
                except UnicodeDecodeError:
                    yield raw.decode("latin-1")
    except (OSError, EOFError) as error:  # e.g. a truncated or mislabelled .gz
        raise ConversionError(f"{path}: cannot be read ({error}).") from error


def numbered_lines(path):
    """(1-based line number, line without its ending) for every non-blank line of ``path``."""
    path = require_file(path)
    for number, line in enumerate(_decoded_lines(path), start=1):
        line = line.rstrip("\r\n")
        if line.strip():
            yield number, line


def _split_fields(line, sep):
    return [value.strip() for value in line.split(sep)]


def _records(path, sep, quoted):
    """(line number, fields) per non-blank record: split on ``sep``, or CSV-style when ``quoted``
    (fields may be quoted and span lines; the number is the record's last line)."""
    if not quoted:
        for number, line in numbered_lines(path):
            yield number, _split_fields(line, sep)
        return
    reader = csv.reader(_decoded_lines(path), delimiter=sep)
    try:
        for fields in reader:
            if any(value.strip() for value in fields):
                yield reader.line_num, [value.strip() for value in fields]
    except csv.Error as error:
        raise ConversionError(
            f"{path}, line {reader.line_num}: {error}. Fix the quoting of the line."
        ) from error


def read_delimited(path, sep, names=None, required=(), quoted=False):
    """A delimited text file as a frame of str, indexed by 1-based line number.

    Args:
        path (str or Path): the file (``.gz`` is decompressed).
        sep (str or None): field separator (``"\\t"``, ``"::"``, ...; None: runs of whitespace).
        names (list of str or None): column names; None: the first non-blank line is a header.
        required (tuple of str): header columns that must be present.
        quoted (bool): CSV quoting (``sep`` one character): for user tables, not raw formats.

    Raises:
        ConversionError: a missing header column, or a line with the wrong number of fields.
    """
    path = require_file(path)
    records = _records(path, sep, quoted)
    if names is None:
        first = next(records, None)
        if first is None:
            raise ConversionError(f"{path}: the file is empty; expected a header line.")
        names = first[1]
        missing = [column for column in required if column not in names]
        if missing:
            raise ConversionError(
                f"{path}, line {first[0]} (header): columns {missing} are missing; the header has "
                f"{names}. Rename the columns or check that this is the right file."
            )
    numbers, rows = [], []
    for number, fields in records:
        if len(fields) != len(names):
            raise ConversionError(
                f"{path}, line {number}: expected {len(names)} fields ({', '.join(names)}) "
                f"separated by {sep or 'whitespace'!r}, found {len(fields)}: {fields[:6]}. "
                "Fix or remove the line."
            )
        numbers.append(number)
        rows.append(fields)
    return pd.DataFrame(rows, columns=names, index=pd.Index(numbers, name="line"), dtype=object)


def where(path, frame, position):
    """``"<path>, line N"`` for the row at ``position`` of a frame indexed by line (or row)."""
    return f"{path}, {frame.index.name or 'row'} {frame.index[position]}"


def to_numbers(frame, column, path, integer=False):
    """``frame[column]`` as float (or int64) numbers; a ConversionError names the first line whose
    value is not a finite number (an integer)."""
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if integer:
        bad |= np.isfinite(numbers) & (numbers != np.round(numbers))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise ConversionError(
            f"{where(path, frame, position)}: {column} {values.iloc[position]!r} is not {kind}. "
            "Fix or remove the line."
        )
    return pd.Series(numbers.astype("int64") if integer else numbers, index=frame.index)


def unique_rows(frame, key, path):
    """``frame`` without repeated identical rows; a ConversionError names two lines that share the
    ``key`` columns but differ elsewhere (conflicting duplicates)."""
    frame = frame[~frame.duplicated()]
    repeated = frame.duplicated(key, keep=False).to_numpy()
    if repeated.any():
        clash = frame[repeated]
        first = clash.iloc[0]
        same = clash[(clash[key] == first[key]).all(axis=1)]
        raise ConversionError(
            f"{path}, lines {same.index[0]} and {same.index[1]}: {dict(first[key])} appears twice "
            "with different values; keep one of the lines."
        )
    return frame


def check_known(frame, column, known, path, catalogue):
    """A ConversionError for the first line whose ``frame[column]`` is not in ``known`` (the ids of
    ``catalogue``, a file name)."""
    unknown = ~frame[column].isin(known).to_numpy()
    if unknown.any():
        position = int(np.flatnonzero(unknown)[0])
        raise ConversionError(
            f"{where(path, frame, position)}: {column} {frame[column].iloc[position]!r} is not in "
            f"{catalogue} ({int(unknown.sum())} such lines). Add it there or remove the lines."
        )


def npy_features(paths, n_items, inter_path):
    """Describe item feature matrices whose row r holds item token ``str(r)``.

    Args:
        paths (list of Path): ``.npy`` files, each ``[n_items, dim]``; the modality is the stem.
        n_items (int): the number of items (ids 0 .. n_items - 1) of ``inter_path``.

    Returns:
        dict: {modality: {"path": absolute str, "shape": [rows, dim], "dtype": str}}.

    Raises:
        ConversionError: a file that is not 2-D or has the wrong number of rows (NaN/inf rows are
            refused when the matrix is written to the feature store).
    """
    features = {}
    for path in sorted(paths):
        try:
            matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ConversionError(f"{path}: not a readable .npy array ({error}).") from error
        if matrix.ndim != 2 or matrix.shape[1] == 0:
            raise ConversionError(
                f"{path}: shape {list(matrix.shape)}; expected [items, dim] with one row per item."
            )
        if matrix.shape[0] != n_items:
            raise ConversionError(
                f"{path}: {matrix.shape[0]} rows, but {inter_path} has {n_items} items (ids 0.."
                f"{n_items - 1}); row r must hold the features of item r. Export the matrix for "
                "exactly these items, or move the file out of the folder."
            )
        features[path.stem] = {
            "path": str(path.resolve()),
            "shape": list(matrix.shape),
            "dtype": str(matrix.dtype),
        }
    return features


# ------------------------------------------------------------------------- filtering and splitting


def parse_ratios(text):
    """``"0.8,0.1,0.1"`` -> (train, valid, test) fractions: non-negative, train > 0, sum 1."""
    try:
        ratios = tuple(float(part) for part in text.split(","))
    except ValueError:
        ratios = ()
    valid = len(ratios) == 3 and all(0 <= ratio <= 1 for ratio in ratios)  # False for NaN
    if not valid or ratios[0] == 0 or abs(sum(ratios) - 1) > 1e-6:
        raise ConversionError(
            f"--split {text}: expected three fractions train,valid,test that sum to 1 with "
            "train > 0, e.g. 0.8,0.1,0.1."
        )
    return ratios


def implicit(inter, threshold):
    """Interactions with ``rating >= threshold``, without the rating column."""
    if "rating" not in inter:
        raise ConversionError(
            "--implicit-threshold: this source has no ratings (its interactions are already "
            "implicit); leave the option out."
        )
    return inter[inter["rating"] >= threshold].drop(columns="rating")


def kcore(inter, k):
    """The largest subset of ``inter`` in which every user and every item has >= k interactions
    (rows dropped repeatedly until none falls below k)."""
    while True:
        user_counts = inter["user_id"].map(inter["user_id"].value_counts())
        item_counts = inter["item_id"].map(inter["item_id"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return inter
        inter = inter[keep]


def split_by_user(users, ratios, seed):
    """A seeded random split of each user's interactions.

    Args:
        users (array-like of str): the user of each interaction, shape [n].
        ratios (tuple): (train, valid, test) fractions, train > 0.
        seed (int): the same seed and the same input rows give the same split.

    Returns:
        numpy.ndarray: [n] part names (``train``, ``valid``, ``test``). A user with m interactions
        gives floor(valid * m) to valid and floor(test * m) to test, picked at random; a part with
        a positive ratio that got none still gets one while the user keeps at least one training
        interaction (test first, then valid). So every user is in train.
    """
    codes, uniques = pd.factorize(np.asarray(users))
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(codes)), codes))
    sizes = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - starts[codes[order]]
    counts = {}
    for part, ratio in zip(PARTS[1:], ratios[1:]):
        counts[part] = np.floor(ratio * sizes + 1e-9).astype(np.int64)
    for part, ratio in (("test", ratios[2]), ("valid", ratios[1])):
        train = sizes - counts["valid"] - counts["test"]
        counts[part] += (ratio > 0) & (counts[part] == 0) & (train >= 2)
    n_test, n_valid = counts["test"][codes], counts["valid"][codes]
    return np.where(rank < n_test, "test", np.where(rank < n_test + n_valid, "valid", "train"))


def _filtered(inter, args, notes):
    if args.implicit_threshold is not None:
        before = len(inter)
        inter = implicit(inter, args.implicit_threshold)
        notes.append(f"rating >= {args.implicit_threshold:g}: kept {len(inter)} of {before} rows")
    repeated = inter.duplicated(["user_id", "item_id"])
    if repeated.any():
        notes.append(f"dropped {int(repeated.sum())} repeated (user, item) rows (kept the first)")
        inter = inter[~repeated]
    if args.kcore is not None:
        if args.kcore < 1:
            raise ConversionError(f"--kcore {args.kcore}: expected an integer >= 1.")
        before = len(inter)
        inter = kcore(inter, args.kcore)
        notes.append(f"{args.kcore}-core: kept {len(inter)} of {before} rows")
    if inter.empty:
        raise ConversionError("no interactions are left after filtering; lower the threshold or k.")
    return inter


def _parts(inter, args, notes):
    """{suffix: frame}: ``inter`` alone, or ``train.inter`` / ``valid.inter`` / ``test.inter``."""
    has_split = "split" in inter
    if args.split:
        ratios = parse_ratios(args.split)
        if has_split:
            notes.append("--split: the source's own split was replaced by a random one")
        inter = inter.assign(split=split_by_user(inter["user_id"], ratios, args.seed))
    elif args.keep_split:
        if not has_split:
            raise ConversionError(
                "--keep-split: this source has no split of its own; use --split T,V,S instead."
            )
        if not (inter["split"] == "valid").any():
            if not 0 < args.valid_from_train < 1:
                raise ConversionError("--valid-from-train must be between 0 and 1 (exclusive).")
            train = inter["split"] == "train"
            moved = split_by_user(
                inter.loc[train, "user_id"], (1 - args.valid_from_train, args.valid_from_train, 0),
                args.seed,
            )
            moved = pd.Series(moved, index=inter.index[train])
            inter = inter.assign(split=inter["split"].where(~train, moved))
            notes.append(
                f"the source has no validation part: moved {int((moved == 'valid').sum())} "
                f"training rows (--valid-from-train {args.valid_from_train:g}, seed {args.seed})"
            )
    else:
        if has_split:
            notes.append("the source's own split was not kept (pass --keep-split to keep it)")
        return {"inter": inter.drop(columns="split", errors="ignore")}
    parts = {}
    for part in PARTS:
        rows = inter[inter["split"] == part].drop(columns="split")
        if rows.empty:
            raise ConversionError(f"the {part} part is empty after filtering; lower --kcore.")
        parts[f"{part}.inter"] = rows
    return parts


# ---------------------------------------------------------------------------------------- writing


def check_target(args):
    """Refuse a dataset name with a path in it, or an existing DATA_DIR/NAME without --overwrite."""
    if not args.name or args.name.startswith(".") or Path(args.name).name != args.name:
        raise ConversionError(f"--name {args.name!r}: expected a plain folder name, e.g. lfm2k.")
    target = Path(args.out) / args.name
    if target.exists() and not args.overwrite:
        raise ConversionError(f"{target} exists; pass --overwrite or choose another --name.")
    return target


@contextmanager
def _staging(target):
    """A fresh hidden folder beside ``target`` that replaces it when the block succeeds and is
    removed when it fails: a failed conversion leaves no partial dataset folder."""
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
            try:
                os.rename(staging, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(target.parent.iterdir()):
            target.parent.rmdir()
        raise


def _dataset_yaml(args, target, source, inter_types, item_types, user_types, benchmark, extras):
    config = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id"}
    if "rating" in inter_types:
        config["RATING_FIELD"] = "rating"
    if "timestamp" in inter_types:
        config["TIME_FIELD"] = "timestamp"
    config["load_col"] = {"inter": list(inter_types)}
    if item_types:
        config["load_col"]["item"] = list(item_types)
    if user_types:
        config["load_col"]["user"] = list(user_types)
    if benchmark:
        config["benchmark_filename"] = list(PARTS)
    inputs = "\n".join(f"#   {path}" for path in source.inputs)
    header = (
        f"# Dataset config written by `recbole-mm convert {args.format}` from:\n{inputs}\n"
        f"# Use: run_recbole --model=LightGCN --dataset={args.name} "
        f"--data_path={target.parent.resolve()} "
        f"--config_files={target.resolve() / (args.name + '.yaml')}\n"
    )
    header += "".join(f"# {line}\n" for line in extras)
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def _present(table, column, ids):
    """The rows of a side table whose ``column`` is in ``ids``; None when none is left."""
    if table is None:
        return None
    table = table[table[column].isin(ids)]
    return table if len(table) else None


def _kept_searches(search, inter):
    """The searches whose (user, item) is still an interaction after filtering; None if none."""
    if search is None:
        return None
    kept = pd.MultiIndex.from_frame(inter[["user_id", "item_id"]])
    search = search[pd.MultiIndex.from_frame(search[["user_id", "item_id"]]).isin(kept)]
    return search if len(search) else None


def _write_files(folder, name, parts, inter_types, item, user, text, source, config, search=None):
    """Write every file of the dataset into ``folder``; returns {file name: rows}."""
    files = {}
    for suffix, rows in parts.items():
        write_atomic(folder / f"{name}.{suffix}", rows, inter_types)
        files[f"{name}.{suffix}"] = len(rows)
    sides = (("item", item, source.item_types), ("user", user, source.user_types))
    for suffix, table, types in sides:
        if table is not None:
            write_atomic(folder / f"{name}.{suffix}", table, types)
            files[f"{name}.{suffix}"] = len(table)
    if text is not None:
        write_text_table(folder / f"{name}.text.tsv", text)
        files[f"{name}.text.tsv"] = len(text)
    if search is not None:
        write_search_file(folder / f"{name}.search", search)
        files[f"{name}.search"] = len(search)
    if source.features:
        store = FeatureStore(folder / "features")
        for modality, info in source.features.items():
            matrix = np.load(info["path"], mmap_mode="r")
            try:  # the store refuses NaN/inf rows, naming the row
                store.write(modality, [str(r) for r in range(len(matrix))], matrix, source=info["path"])
            except FeatureError as error:
                raise ConversionError(f"{info['path']}: {error}") from error
            files[f"features/{modality}.npy"] = len(matrix)
    replace_atomically(folder / f"{name}.yaml", lambda handle: handle.write(config))
    return files


def build(source, args):
    """Apply the shared options to ``source`` and write DATA_DIR/NAME all at once.

    Returns:
        dict: ``path`` (str), ``users``, ``items``, ``interactions`` (int), ``files``
        ({file name: rows}) and ``notes`` (list of str).
    """
    target = check_target(args)
    notes = list(source.notes)
    inter = _filtered(source.inter.reset_index(drop=True), args, notes)
    parts = _parts(inter, args, notes)
    inter_types = {"user_id": "token", "item_id": "token"}
    inter_types.update({c: "float" for c in ("rating", "timestamp") if c in inter})
    users, items = set(inter["user_id"]), set(inter["item_id"])
    item = _present(source.item, "item_id", items)
    user = _present(source.user, "user_id", users)
    text = _present(source.text, "item_id", items)
    search = _kept_searches(source.search, inter)
    extras = []
    if search is not None:
        extras.append(
            f"Searches: {args.name}.search (UnifiedSearchRec reads it; see recbole_mm.search.data)"
        )
    if text is not None:
        extras.append(
            f"Free text per item: {args.name}.text.tsv (not an atomic file; RecBole ignores it)"
        )
    if source.features:
        extras.append(
            "Item features: features/ (recbole_mm feature store), e.g. modalities: "
            f"[{', '.join(sorted(source.features))}]"
        )
    config = _dataset_yaml(
        args, target, source, inter_types, source.item_types if item is not None else {},
        source.user_types if user is not None else {}, len(parts) > 1, extras,
    )
    with _staging(target) as folder:
        try:
            files = _write_files(
                folder, args.name, parts, inter_types, item, user, text, source, config, search
            )
        except AtomicFileError as error:  # name the final path, not the staging folder
            raise ConversionError(str(error).replace(str(folder), str(target))) from error
    return {
        "path": str(target),
        "users": len(users),
        "items": len(items),
        "interactions": len(inter),
        "files": files,
        "notes": notes,
    }
