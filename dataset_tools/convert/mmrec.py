"""``convert mmrec``: the MMRec layout (the lastfm-2k and dbbook multimodal releases).

``--src`` is the interaction file or its folder (the one ``*.inter`` there that does not end in
``_og_ids.inter``): tab-separated, a header line, columns ``userID itemID [rating] x_label`` with
0-based integer ids and x_label 0/1/2 = train/valid/test (kept with ``--keep-split``).

Output: ``item_id`` = itemID and ``user_id`` = userID as tokens, ``rating`` when the file has one.

Feature matrices: every ``*.npy`` beside the interaction file must be [n_items, dim] with row r =
item r (n_items = largest itemID + 1) and finite; each is copied into the dataset's feature store
(``features/``, see :mod:`recbole_mm.data.features`) as a feature set named after its file stem,
with item token ``r`` for row r; a model uses it with ``modalities: [<stem>]``.

Item text (optional): ``--item-text FILE`` is a tab-separated table with a header whose first
column is the item's original id (lastfm-2k's ``lfm2k_text.tsv``: artistID, text; dbbook's
``full_extended_dbbook_img_links.tsv``: id, name, ...). ``--item-text-cols`` picks its text columns
(default: all the others). The original id of each itemID comes from the row-aligned
``<stem>_og_ids.inter`` beside the interaction file (or ``--og-ids``): row k of both files is the
same interaction. Identical repeated rows of the text table are dropped (dbbook's has some);
conflicting ones are an error. The text goes to ``DATASET.text.tsv``.
"""

from pathlib import Path

import pandas as pd

from recbole_mm.dataset_tools.convert.common import (
    ConversionError,
    Source,
    npy_features,
    read_delimited,
    require_file,
    to_numbers,
    unique_rows,
    where,
)

NAME = "mmrec"
HELP = "MMRec layout: userID itemID rating x_label (+ per-modality .npy features)"
SPLITS = {0: "train", 1: "valid", 2: "test"}


def add_arguments(parser):
    """--item-text, --item-text-cols, --og-ids (see the module docstring)."""
    parser.add_argument(
        "--item-text", help="TSV with a header: original item id, then text columns"
    )
    parser.add_argument("--item-text-cols", help="comma-separated text columns (default: all)")
    parser.add_argument(
        "--og-ids", help="row-aligned interactions with original ids (default <stem>_og_ids.inter)"
    )


def _interaction_file(src):
    src = Path(src)
    if not src.is_dir():
        return require_file(src)
    found = [p for p in sorted(src.glob("*.inter")) if not p.name.endswith("_og_ids.inter")]
    if len(found) != 1:
        raise ConversionError(
            f"{src}: expected one MMRec interaction file (*.inter) here, found "
            f"{[path.name for path in found]}; pass the file itself as --src."
        )
    return found[0]


def _ids(frame, column, path):
    ids = to_numbers(frame, column, path, integer=True)
    if (ids < 0).any():
        position = int((ids < 0).to_numpy().argmax())
        raise ConversionError(
            f"{where(path, frame, position)}: {column} {ids.iloc[position]} is negative; MMRec ids "
            "are 0-based row numbers."
        )
    return ids


def load(args):
    """Read the MMRec files named by ``args`` (see the module docstring) into a Source."""
    path = _interaction_file(args.src)
    frame = read_delimited(path, "\t", required=("userID", "itemID", "x_label"))
    items = _ids(frame, "itemID", path)
    labels = to_numbers(frame, "x_label", path, integer=True)
    unknown = ~labels.isin(list(SPLITS)).to_numpy()
    if unknown.any():
        position = int(unknown.argmax())
        raise ConversionError(
            f"{where(path, frame, position)}: x_label {labels.iloc[position]} is not 0, 1 or 2 "
            "(train, valid, test). Fix or remove the line."
        )
    inter = pd.DataFrame(
        {"user_id": _ids(frame, "userID", path).astype(str), "item_id": items.astype(str)}
    )
    if "rating" in frame:
        inter["rating"] = to_numbers(frame, "rating", path)
    inter["split"] = labels.map(SPLITS)
    features = npy_features(list(path.parent.glob("*.npy")), int(items.max()) + 1, path)
    source = Source(inter=inter, inputs=[path], features=features)
    if args.item_text:
        source.text = _item_text(args, path, frame, inter["item_id"], source)
    return source


def _original_ids(args, path, frame, items, source):
    """{itemID token: original id} read from the row-aligned ``_og_ids.inter`` file."""
    og_path = Path(args.og_ids) if args.og_ids else path.with_name(f"{path.stem}_og_ids.inter")
    if not og_path.is_file():
        raise ConversionError(
            f"{og_path}: not found. --item-text joins on original item ids, read from the "
            f"interactions of {path.name} with original ids, row by row; pass it with --og-ids."
        )
    og = read_delimited(og_path, "\t", required=("itemID",))
    if len(og) != len(frame) or (og.index != frame.index).any():
        raise ConversionError(
            f"{og_path}: {len(og)} rows, {path} {len(frame)}; the two files must hold the same "
            "interactions on the same lines."
        )
    source.inputs.append(og_path)
    pairs = pd.DataFrame({"item_id": items, "original": og["itemID"]}).drop_duplicates()
    for column, other in (("item_id", "original"), ("original", "item_id")):
        repeated = pairs[pairs.duplicated(column, keep=False)]
        if len(repeated):
            value = repeated[column].iloc[0]
            lines = list(repeated.index[repeated[column] == value][:2])
            raise ConversionError(
                f"{og_path}, lines {lines[0]} and {lines[1]}: {column} {value} is paired with two "
                f"different {other} values; the file's rows must align with {path}."
            )
    return pairs


def _item_text(args, path, frame, items, source):
    pairs = _original_ids(args, path, frame, items, source)
    text_path = require_file(args.item_text)
    source.inputs.append(text_path)
    table = read_delimited(text_path, "\t")
    id_column = table.columns[0]
    columns = args.item_text_cols.split(",") if args.item_text_cols else list(table.columns[1:])
    missing = [column for column in columns if column not in table.columns[1:]]
    if missing:
        raise ConversionError(
            f"{text_path}: --item-text-cols {missing} are not text columns of the header "
            f"{list(table.columns)} (the first column is the item id)."
        )
    table = unique_rows(table[[id_column] + columns], [id_column], text_path)
    table = table.rename(columns={id_column: "_original"})
    text = pairs.merge(table, left_on="original", right_on="_original")[["item_id"] + columns]
    if len(text) < len(pairs):
        source.notes.append(f"{len(pairs) - len(text)} items have no row in {text_path.name}")
    return text
