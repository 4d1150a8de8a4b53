"""``recbole-mm extract``: item features into the dataset's feature store.

Three ways in:

- encode item text with a transformers model (``--modality text --encoder NAME_OR_PATH --field
  title,genres``): the fields are read from ``DATASET.text.tsv`` (free text, written by the
  converters) and ``DATASET.item`` (token / token_seq fields); an item's fields are joined with
  ``". "``; items with no text are left out of the feature set (marked missing, not zero);
- encode item pictures, sounds or videos (``--modality image|audio|video --encoder NAME_OR_PATH
  [--weights FILE]``), given as ``--media-dir DIR`` (files named ``<item token>.<ext>``) or
  ``--media-map FILE`` (lines ``item_token<TAB>path``, relative paths from the map's folder; local
  files only). Items without a media file, or whose file cannot be read, are left out and reported
  (count and first tokens, also in the manifest as ``left_out``);
- import a precomputed matrix (``--import-npy FILE`` with ``--tokens FILE``, one item token per
  row, or ``--row-index`` for MMRec-style files whose row r is item token ``r``), any modality.

Encoding is resumable: finished shards of ``--shard-size`` items are kept under
``features/.work/`` and skipped when the same command runs again (same encoder, settings, texts or
media files); the feature set appears in the store only when complete.
"""

import argparse
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from recbole_mm.data.features import FeatureError, FeatureStore
from recbole_mm.dataset_tools.atomic import read_atomic, read_text_table
from recbole_mm.files import replace_atomically

MODALITIES = ("text", "image", "audio", "video")
MEDIA_MODALITIES = MODALITIES[1:]
REPORTED_TOKENS = 10  # left-out items named in the report and the manifest
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
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


def _fingerprint(encoder_name, keys, settings):
    """16 hex digits identifying an encoding job: encoder, settings and one key per item."""
    digest = hashlib.sha256(json.dumps([encoder_name, settings]).encode())
    for key in keys:
        digest.update(f"{key}\n".encode())
    return digest.hexdigest()[:16]


def encode_resumably(encoder, tokens, inputs, work_dir, shard_size):
    """Encode ``inputs`` (texts or media paths) shard by shard with ``encoder.encode``, keeping
    finished shards in ``work_dir``; float32 [len(inputs), dim] (NaN rows: inputs that failed)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, start in enumerate(range(0, len(inputs), shard_size)):
        shard = work_dir / f"shard-{index:05d}.npy"
        if shard.is_file():
            parts.append(np.load(shard))
            continue
        vectors = encoder.encode(inputs[start:start + shard_size])
        replace_atomically(shard, lambda f: np.save(f, vectors), binary=True)
        parts.append(vectors)
        logger.info("encoded %d / %d items", min(start + shard_size, len(inputs)), len(inputs))
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


def _encode_into_store(data_path, dataset, name, encoder, tokens, inputs, keys, settings,
                       shard_size, info, left_out=(), store=None):
    """Encode ``inputs`` (one per item token) resumably and store the rows that succeeded.

    Args:
        keys (list of str): one per item, what identifies its input (text, or file and its date).
        settings (list): what else changes the vectors (for the resumption fingerprint).
        info (dict): recorded in the manifest.
        left_out (iterable of str): items already known to have no input (no media file).
        store (FeatureStore or None): where to store it; default: the dataset's own store.

    Returns:
        Path: the stored matrix.

    Raises:
        ExtractionError: no item could be encoded.
    """
    store = store or FeatureStore.of_dataset(data_path, dataset)
    work_dir = store.root / ".work" / f"{name}-{_fingerprint(encoder.name, keys, settings)}"
    matrix = encode_resumably(encoder, tokens, inputs, work_dir, shard_size)
    encoded = np.isfinite(matrix).all(axis=1)
    left_out = sorted(set(left_out).union(t for t, ok in zip(tokens, encoded) if not ok))
    if not encoded.any():
        shutil.rmtree(work_dir, ignore_errors=True)
        raise ExtractionError(
            f"none of the {len(left_out)} items of dataset {dataset} could be encoded into feature "
            f"set {name!r} (see the warnings above): check the inputs"
        )
    if left_out:
        logger.warning(
            "%d items left out of feature set %r (no input, unreadable, or not finite): %s%s",
            len(left_out), name, ", ".join(left_out[:REPORTED_TOKENS]),
            " ..." if len(left_out) > REPORTED_TOKENS else "",
        )
        info = dict(info, left_out=len(left_out), left_out_first=left_out[:REPORTED_TOKENS])
    path = store.write(name, [t for t, ok in zip(tokens, encoded) if ok], matrix[encoded], **info)
    shutil.rmtree(work_dir, ignore_errors=True)
    return path


def extract_text(data_path, dataset, fields, encoder_name, name=None, shard_size=2048, store=None,
                 **encoder_args):
    """Encode the item text ``fields`` of a dataset into feature set ``name`` (default ``text``).

    ``store`` (FeatureStore or None) defaults to the dataset's own ``features/`` folder.

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
    return _encode_into_store(
        data_path, dataset, name or "text", encoder, tokens, ordered,
        [f"{t}\t{text}" for t, text in zip(tokens, ordered)], settings, shard_size,
        {"modality": "text", "encoder": encoder_name, "fields": list(fields),
         "pooling": encoder.pooling, "normalized": encoder.normalize, "max_length": encoder.max_length},
        store=store,
    )


def build_from_recipe(store, name, recipe, data_folder):
    """Create feature set ``name`` in ``store`` from a dataset YAML recipe (first use of a dataset).

    Args:
        recipe (dict): ``{modality: text, fields: [...], encoder: NAME_OR_PATH}``.
        data_folder (Path): the dataset's folder (``DATASET.item`` / ``DATASET.text.tsv``).
    """
    if recipe.get("modality", "text") != "text" or not recipe.get("fields"):
        raise ExtractionError(
            f"feature recipe for {name!r}: only text recipes ({{modality: text, fields: [...], "
            f"encoder: ...}}) can run automatically, got {recipe}; extract it with `recbole-mm extract`"
        )
    logger.info("Creating feature set %r in %s (first use)", name, store.root)
    return extract_text(
        data_folder.parent, data_folder.name, list(recipe["fields"]),
        recipe.get("encoder") or _default_encoder("text"), name=name, store=store,
    )


def _file_key(path):
    """What identifies a file's content cheaply: path, size and modification time (str)."""
    stat = Path(path).stat()
    return f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}"


def _files_in_dir(media_dir, known):
    """{item token: file} of the files ``<token>.<ext>`` in ``media_dir`` (items of ``known``)."""
    media_dir = Path(media_dir).expanduser()
    if not media_dir.is_dir():
        raise ExtractionError(f"--media-dir {media_dir}: no such folder")
    files = {}
    for path in sorted(media_dir.iterdir()):
        if path.stem not in known or path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in files:
            raise ExtractionError(
                f"{media_dir}: two files for item {path.stem!r} ({files[path.stem].name} and "
                f"{path.name}); keep one"
            )
        files[path.stem] = path
    return files


def _files_in_map(media_map, known):
    """{item token: file} of the lines ``item_token<TAB>path`` of ``media_map`` (items of
    ``known``; relative paths start at the map's folder; blank lines and ``#`` comments skipped)."""
    media_map = Path(media_map).expanduser()
    if not media_map.is_file():
        raise ExtractionError(f"--media-map {media_map}: no such file")
    files, line_of = {}, {}
    for number, line in enumerate(media_map.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        token, tab, location = line.partition("\t")
        location = location.strip()
        if not tab or not token or not location:
            raise ExtractionError(f"{media_map}, line {number}: expected 'item_token<TAB>path', got {line!r}")
        if _URL.match(location):
            raise ExtractionError(
                f"{media_map}, line {number}: {location!r} is a URL; downloading media is not "
                "supported: download the files first and list their local paths"
            )
        if token in line_of:
            raise ExtractionError(
                f"{media_map}, lines {line_of[token]} and {number}: item {token!r} is listed twice"
            )
        line_of[token] = number
        if token in known:
            files[token] = media_map.parent / Path(location).expanduser()
    return files


def media_files(folder, media_dir=None, media_map=None):
    """The media file of each item of the dataset in ``folder``, from exactly one of a folder of
    ``<item token>.<ext>`` files or a tab-separated map.

    Returns:
        tuple: ({item token: Path} of the items whose file exists, sorted list of the item tokens
        without one).

    Raises:
        ExtractionError: a malformed map (naming the line), a URL, two files for one item, or no
            file for any item.
    """
    if (media_dir is None) == (media_map is None):
        raise ExtractionError("give exactly one of --media-dir DIR and --media-map FILE")
    known = dataset_item_tokens(folder)
    listed = _files_in_dir(media_dir, known) if media_dir is not None else _files_in_map(media_map, known)
    files = {token: path for token, path in listed.items() if path.is_file()}
    absent = sorted(str(path) for token, path in listed.items() if token not in files)
    if absent:
        logger.warning("%s: %d listed media files do not exist (e.g. %s)", media_map, len(absent), absent[0])
    if not files:
        example = min(known)
        raise ExtractionError(
            f"{media_dir if media_dir is not None else media_map}: no existing media file for any of "
            f"the {len(known)} items of dataset {folder.name}; name the files after the item tokens "
            f"(e.g. {example}.jpg) or map each token to its file (e.g. '{example}<TAB>path/to/file')"
        )
    return files, sorted(known - set(files))


def _media_encoder(modality, encoder_name, weights, **encoder_args):
    """The encoder object of ``modality`` (image, audio or video)."""
    if modality == "image":
        from recbole_mm.dataset_tools.encoders.image import ImageEncoder

        return ImageEncoder(encoder_name, weights=weights, **encoder_args)
    if modality == "video":
        from recbole_mm.dataset_tools.encoders.video import VideoEncoder

        return VideoEncoder(encoder_name, weights=weights, **encoder_args)
    if modality != "audio":
        raise ExtractionError(f"modality {modality!r}: media modalities are {', '.join(MEDIA_MODALITIES)}")
    if weights is not None:
        raise ExtractionError(
            "--weights applies to image and video encoders; an audio encoder is a transformers "
            "model: give its local folder as --encoder"
        )
    from recbole_mm.dataset_tools.encoders.audio import AudioEncoder

    return AudioEncoder(encoder_name, **encoder_args)


def extract_media(data_path, dataset, modality, encoder_name, media_dir=None, media_map=None,
                  name=None, shard_size=2048, weights=None, **encoder_args):
    """Encode the image, audio or video file of each item into feature set ``name`` (default: the
    modality).

    Args:
        modality (str): ``image``, ``audio`` or ``video``.
        encoder_name (str): see ``ImageEncoder``, ``AudioEncoder``, ``VideoEncoder``.
        media_dir (str or None): folder of files named ``<item token>.<ext>``.
        media_map (str or None): or a file of lines ``item_token<TAB>path``.
        weights (str or None): image / video: a local state dict file.
        **encoder_args: passed to the encoder (device, batch_size, num_workers, frames...).

    Returns:
        Path: the stored matrix. Items without a readable file are left out, logged, and counted in
        the manifest (``left_out``, ``left_out_first``).
    """
    folder = dataset_folder(data_path, dataset)
    files, missing = media_files(folder, media_dir, media_map)
    tokens = sorted(files)
    paths = [str(files[t]) for t in tokens]
    encoder = _media_encoder(modality, encoder_name, weights, **encoder_args)
    settings = [modality, encoder.settings, _file_key(weights) if weights else None, shard_size]
    source = str(Path(media_dir if media_dir is not None else media_map).resolve())
    return _encode_into_store(
        data_path, dataset, name or modality, encoder, tokens, paths,
        [f"{t}\t{_file_key(p)}" for t, p in zip(tokens, paths)], settings, shard_size,
        {**encoder.settings, "modality": modality, "encoder": encoder_name, "source": source},
        left_out=missing,
    )


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
        "extract", help="encode item text, pictures, sounds or videos, or import a feature matrix, "
        "into the feature store",
    )
    parser.add_argument("--data-path", required=True, help="folder holding the dataset folders")
    parser.add_argument("--dataset", required=True, help="dataset name")
    parser.add_argument("--modality", choices=MODALITIES, default="text")
    parser.add_argument("--name", help="feature set name (default: the modality)")
    parser.add_argument(
        "--encoder", help="text: transformers hub name or local folder (default "
        "sentence-transformers/all-MiniLM-L6-v2); image: efficientnet-lite0 (default, offline), a timm "
        "model name or local timm folder; audio (required): a transformers wav2vec2 / HuBERT / AST / "
        "Whisper hub name or local folder; video: r2plus1d_18 (default), r3d_18 or mc3_18",
    )
    parser.add_argument("--weights", help="image / video: local state dict file of the encoder "
                        "(offline use of a timm or torchvision architecture)")
    parser.add_argument("--field", help="text fields to encode, comma-separated (e.g. title,genres)")
    parser.add_argument("--media-dir", help="image / audio / video: folder of files named "
                        "<item token>.<ext>")
    parser.add_argument("--media-map", help="image / audio / video: file of lines "
                        "item_token<TAB>path (relative paths from its folder; no URLs)")
    parser.add_argument("--batch-size", type=int, help="inputs per forward pass (default: text 64, "
                        "image 64, audio 8, video 8)")
    parser.add_argument("--num-workers", type=int, help="decoding / tokenising worker processes")
    parser.add_argument("--frames", type=int, help="video: frames sampled per video (default 16)")
    parser.add_argument("--max-seconds", type=float, help="audio: encode the first S seconds of each "
                        "file (default 30; 0: all)")
    parser.add_argument("--shard-size", type=int, default=2048, help="items per resumable shard")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                        help="text: L2-normalise vectors (default: as the model was trained)")
    parser.add_argument("--import-npy", help="import this precomputed [rows, dim] .npy instead")
    parser.add_argument("--tokens", help="with --import-npy: item token of each row, one per line")
    parser.add_argument("--row-index", action="store_true",
                        help="with --import-npy: row r is item token 'r' (MMRec layout)")
    parser.set_defaults(handler=_extract)


# options that only some modalities read: given with another one, they are a mistake worth naming
_MODALITY_OPTIONS = {
    "field": ("text",), "normalize": ("text",), "media_dir": MEDIA_MODALITIES,
    "media_map": MEDIA_MODALITIES, "weights": ("image", "video"), "frames": ("video",),
    "max_seconds": ("audio",),
}


def _default_encoder(modality):
    if modality == "text":
        from recbole_mm.dataset_tools.encoders.text import DEFAULT_TEXT_ENCODER

        return DEFAULT_TEXT_ENCODER
    if modality == "image":
        from recbole_mm.dataset_tools.encoders.image import DEFAULT_IMAGE_ENCODER

        return DEFAULT_IMAGE_ENCODER
    if modality == "video":
        from recbole_mm.dataset_tools.encoders.video import DEFAULT_VIDEO_ENCODER

        return DEFAULT_VIDEO_ENCODER
    raise ExtractionError(
        "--encoder is required for audio: a transformers audio model's hub name (e.g. "
        "facebook/wav2vec2-base, MIT/ast-finetuned-audioset-10-10-0.4593, openai/whisper-base) or "
        "a local folder holding the model and its feature extractor"
    )


def _extract(args, extra):
    name = args.name or args.modality
    if args.import_npy:
        path = import_matrix(args.data_path, args.dataset, name, args.import_npy, args.modality,
                             args.tokens, args.row_index)
    else:
        for option, modalities in _MODALITY_OPTIONS.items():
            if getattr(args, option) is not None and args.modality not in modalities:
                raise ExtractionError(
                    f"--{option.replace('_', '-')} applies to --modality {' or '.join(modalities)}, "
                    f"not {args.modality}"
                )
        options = {"device": args.device, "batch_size": args.batch_size,
                   "num_workers": args.num_workers, "frames": args.frames}
        if args.max_seconds is not None:
            options["max_seconds"] = args.max_seconds or None  # 0: the whole file
        options = {key: value for key, value in options.items() if value is not None}
        encoder = args.encoder or _default_encoder(args.modality)
        if args.modality == "text":
            if not args.field:
                raise ExtractionError("--field is required to encode text (e.g. --field title,genres)")
            path = extract_text(args.data_path, args.dataset, args.field.split(","), encoder, name=name,
                                shard_size=args.shard_size, normalize=args.normalize, **options)
        else:
            path = extract_media(args.data_path, args.dataset, args.modality, encoder,
                                 media_dir=args.media_dir, media_map=args.media_map, name=name,
                                 shard_size=args.shard_size, weights=args.weights, **options)
    info = FeatureStore(path.parent).manifest()[name]
    print(f"feature set {name!r}: {info['rows']} items x {info['dim']} -> {path}")
    if info.get("left_out"):
        first = info["left_out_first"]
        more = " ..." if info["left_out"] > len(first) else ""
        print(f"items left out (no {args.modality} input, or unreadable): {info['left_out']}: "
              f"{', '.join(first)}{more}")
