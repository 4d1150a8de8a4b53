"""``recbole-mm extract``: item features into the dataset's feature store.

Two ways in:

- encode item text with a transformers model (``--modality text --encoder NAME_OR_PATH --field
  title,genres``): the fields are read from ``DATASET.text.tsv`` (free text, written by the
  converters) and ``DATASET.item`` (token / token_seq fields); an item's fields are joined with
  ``". "``; items with no text are left out of the feature set (marked missing, not zero);
- import a precomputed matrix (``--import-npy FILE`` with ``--tokens FILE``, one item token per
  row, or ``--row-index`` for MMRec-style files whose row r is item token ``r``), any modality.

Encoding is resumable: finished shards of ``--shard-size`` items are kept under
``features/.work/`` and skipped when the same command runs again; the feature set appears in the
store only when complete. Encoding images, audio and video is not part of this version: import
such features with ``--import-npy``.
"""

import argparse
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from recbole_mm.data.features import FeatureError, FeatureStore
from recbole_mm.dataset_tools.atomic import read_atomic, read_text_table

MODALITIES = ("text", "image", "audio", "video")
logger = logging.getLogger(__name__)


class ExtractionError(ValueError):
    """Inputs that cannot be turned into features; the message names the file and what to do."""


def dataset_folder(data_path, dataset):
    folder = Path(data_path) / dataset
    if not folder.is_dir():
        raise ExtractionError(f"dataset folder {folder} does not exist; convert the data first")
    return folder


def dataset_item_tokens(folder):
    """Every item token the dataset's atomic files mention (set of str)."""
    tokens = set()
    for path in sorted(folder.glob("*.inter")) + sorted(folder.glob(f"{folder.name}.item")):
        frame, types = read_atomic(path)
        if "item_id" in types:
            tokens.update(frame["item_id"].astype(str))
    if not tokens:
        raise ExtractionError(f"no item_id column in the .inter / .item files of {folder}")
    return tokens


def item_texts(folder, fields):
    """{item token: text} from ``fields`` of ``DATASET.text.tsv`` and ``DATASET.item``.

    Raises:
        ExtractionError: a field found in neither file (listing the fields that exist).
    """
    name = folder.name
    columns = {}
    text_path, item_path = folder / f"{name}.text.tsv", folder / f"{name}.item"
    if text_path.is_file():
        table = read_text_table(text_path)
        key = table.columns[0]
        for field in table.columns[1:]:
            columns[field] = dict(zip(table[key], table[field]))
    if item_path.is_file():
        table, types = read_atomic(item_path)
        for field, kind in types.items():
            if field != "item_id" and field not in columns and kind in ("token", "token_seq"):
                values = table[field] if kind == "token" else [" ".join(v) for v in table[field]]
                columns[field] = {
                    str(t): str(v).replace("_", " ") for t, v in zip(table["item_id"], values)
                }
    missing = [f for f in fields if f not in columns]
    if missing:
        raise ExtractionError(
            f"text field(s) {', '.join(missing)} not found in {text_path.name} or {item_path.name} "
            f"of {folder}; available: {', '.join(sorted(columns)) or 'none'}"
        )
    texts = {}
    for token in set().union(*(columns[f] for f in fields)):
        parts = [columns[f].get(token, "").strip() for f in fields]
        text = ". ".join(p for p in parts if p)
        if text:
            texts[token] = text
    return texts


def _fingerprint(encoder_name, tokens, texts, settings):
    digest = hashlib.sha256(json.dumps([encoder_name, settings]).encode())
    for token, text in zip(tokens, texts):
        digest.update(f"{token}\t{text}\n".encode())
    return digest.hexdigest()[:16]


def encode_resumably(encoder, tokens, texts, work_dir, shard_size):
    """Encode ``texts`` shard by shard, keeping finished shards in ``work_dir``; [n, dim] float32."""
    work_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, start in enumerate(range(0, len(texts), shard_size)):
        shard = work_dir / f"shard-{index:05d}.npy"
        if shard.is_file():
            parts.append(np.load(shard))
            continue
        vectors = encoder.encode(texts[start:start + shard_size])
        temporary = work_dir / f".{shard.name}.tmp"
        with open(temporary, "wb") as f:
            np.save(f, vectors)
        temporary.replace(shard)
        parts.append(vectors)
        logger.info("encoded %d / %d items", min(start + shard_size, len(texts)), len(texts))
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


def extract_text(data_path, dataset, fields, encoder_name, name=None, shard_size=2048, **encoder_args):
    """Encode the item text ``fields`` of a dataset into feature set ``name`` (default ``text``).

    Returns:
        Path: the stored matrix.
    """
    from recbole_mm.dataset_tools.encoders.text import TextEncoder

    folder = dataset_folder(data_path, dataset)
    texts = item_texts(folder, fields)
    tokens = sorted(texts)
    ordered = [texts[t] for t in tokens]
    encoder = TextEncoder(encoder_name, **encoder_args)
    settings = [fields, encoder.max_length, encoder.pooling, encoder.normalize, shard_size]
    store = FeatureStore.of_dataset(data_path, dataset)
    name = name or "text"
    work_dir = store.root / ".work" / f"{name}-{_fingerprint(encoder_name, tokens, ordered, settings)}"
    matrix = encode_resumably(encoder, tokens, ordered, work_dir, shard_size)
    path = store.write(
        name, tokens, matrix, modality="text", encoder=encoder_name, fields=list(fields),
        pooling=encoder.pooling, normalized=encoder.normalize, max_length=encoder.max_length,
    )
    shutil.rmtree(work_dir, ignore_errors=True)
    return path


def import_matrix(data_path, dataset, name, matrix_path, modality, tokens_path=None, row_index=False):
    """Import a precomputed ``.npy`` into feature set ``name``.

    Args:
        tokens_path (str or None): file with the item token of each row, one per line.
        row_index (bool): instead, row r is item token ``r`` (MMRec layout).

    Raises:
        ExtractionError: naming the file and row of a mismatch or of an item the dataset lacks.
    """
    folder = dataset_folder(data_path, dataset)
    matrix_path = Path(matrix_path)
    try:
        matrix = np.load(matrix_path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise ExtractionError(f"{matrix_path}: not a readable .npy file ({error})") from None
    if matrix.ndim != 2:
        raise ExtractionError(f"{matrix_path}: expected a 2-d matrix, got shape {matrix.shape}")
    if row_index == bool(tokens_path):
        raise ExtractionError("give exactly one of --tokens FILE and --row-index")
    if row_index:
        tokens = [str(r) for r in range(matrix.shape[0])]
    else:
        tokens = Path(tokens_path).read_text(encoding="utf-8").splitlines()
        if len(tokens) != matrix.shape[0]:
            raise ExtractionError(
                f"{tokens_path} lists {len(tokens)} tokens but {matrix_path} has {matrix.shape[0]} "
                "rows: they must be one token per row"
            )
    known = dataset_item_tokens(folder)
    unknown = [(row, t) for row, t in enumerate(tokens) if t not in known]
    if unknown:
        row, token = unknown[0]
        raise ExtractionError(
            f"{matrix_path}, row {row}: item {token!r} is not an item of dataset {dataset} "
            f"({len(unknown)} such rows); were these features made for another dataset?"
        )
    try:
        return FeatureStore.of_dataset(data_path, dataset).write(
            name, tokens, matrix, modality=modality, source=str(matrix_path.resolve())
        )
    except FeatureError as error:
        raise ExtractionError(f"{matrix_path}: {error}") from None


def add_extract_parser(subparsers):
    """Register ``recbole-mm extract`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "extract", help="encode item text, or import a feature matrix, into the feature store"
    )
    parser.add_argument("--data-path", required=True, help="folder holding the dataset folders")
    parser.add_argument("--dataset", required=True, help="dataset name")
    parser.add_argument("--modality", choices=MODALITIES, default="text")
    parser.add_argument("--name", help="feature set name (default: the modality)")
    parser.add_argument("--encoder", help="text encoder: hub name or local folder "
                        "(default sentence-transformers/all-MiniLM-L6-v2)")
    parser.add_argument("--field", help="text fields to encode, comma-separated (e.g. title,genres)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=2048, help="items per resumable shard")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                        help="L2-normalise vectors (default: as the model was trained)")
    parser.add_argument("--import-npy", help="import this precomputed [rows, dim] .npy instead")
    parser.add_argument("--tokens", help="with --import-npy: item token of each row, one per line")
    parser.add_argument("--row-index", action="store_true",
                        help="with --import-npy: row r is item token 'r' (MMRec layout)")
    parser.set_defaults(handler=_extract)


def _extract(args, extra):
    name = args.name or args.modality
    if args.import_npy:
        path = import_matrix(args.data_path, args.dataset, name, args.import_npy, args.modality,
                             args.tokens, args.row_index)
    elif args.modality != "text":
        raise ExtractionError(
            f"encoding {args.modality} is not available in this version; import precomputed "
            "features with --import-npy FILE (--tokens FILE or --row-index)"
        )
    else:
        if not args.field:
            raise ExtractionError("--field is required to encode text (e.g. --field title,genres)")
        from recbole_mm.dataset_tools.encoders.text import DEFAULT_TEXT_ENCODER

        path = extract_text(
            args.data_path, args.dataset, args.field.split(","), args.encoder or DEFAULT_TEXT_ENCODER,
            name=name, shard_size=args.shard_size, device=args.device, batch_size=args.batch_size,
            normalize=args.normalize,
        )
    info = FeatureStore(path.parent).manifest()[name]
    print(f"feature set {name!r}: {info['rows']} items x {info['dim']} -> {path}")
