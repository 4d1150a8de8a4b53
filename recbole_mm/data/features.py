"""The multimodal feature store: item feature matrices on disk, aligned to RecBole's item ids.

A dataset's features live in ``<data_path>/<dataset>/features/``, one entry per feature set
(``name``, e.g. ``text``, ``minilm_tags``, ``vggish``)::

    <name>.npy       float32 [rows, dim]; read memory-mapped, never parsed as text
    <name>.tokens    the item token of each row, one per line (UTF-8)
    manifest.json    {name: {"dim", "rows", "modality", "encoder", "source", ...}}

Items without the feature are simply not listed: :meth:`FeatureStore.aligned` marks them in a mask
instead of passing zeros off as features. ``manifest.json`` is written last, after both data
files are complete, so a feature set listed there is whole. Everything is written under a temporary
name and renamed into place.

RecBole's own route (a ``float_seq`` field of the ``.item`` file) is read by :func:`aligned_field`.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch

from recbole_mm.files import replace_atomically

MANIFEST = "manifest.json"
FILL_POLICIES = ("zeros", "mean")
logger = logging.getLogger(__name__)


class FeatureError(ValueError):
    """A feature file that is missing, malformed or inconsistent (the message names the file)."""


class FeatureStore:
    """The feature sets of one dataset (see the module docstring for the layout).

    Args:
        root (str or Path): the ``features/`` folder (created on first write).
    """

    def __init__(self, root):
        self.root = Path(root)

    @classmethod
    def of_dataset(cls, data_path, dataset):
        """The store of ``<data_path>/<dataset>/features``."""
        return cls(Path(data_path) / dataset / "features")

    # ------------------------------------------------------------------ manifest
    def manifest(self):
        """{name: info} of the complete feature sets (dict; empty if there is no store)."""
        path = self.root / MANIFEST
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise FeatureError(f"{path}: not valid JSON ({error}); delete it and re-extract") from None

    def names(self):
        """Names of the complete feature sets (sorted list)."""
        return sorted(self.manifest())

    def files(self, name):
        """(matrix path, tokens path) of feature set ``name``."""
        return self.root / f"{name}.npy", self.root / f"{name}.tokens"

    # ------------------------------------------------------------------ write / read
    def write(self, name, tokens, matrix, **info):
        """Store ``matrix`` [rows, dim] with the item ``tokens`` of its rows as feature set ``name``.

        Args:
            name (str): feature set name (letters, digits, ``_``, ``-``, ``.``).
            tokens (list of str): item token of each row; unique, no tabs or newlines.
            matrix (array-like): [rows, dim], finite numbers (stored as float32).
            **info: recorded in the manifest (e.g. modality, encoder, source, normalized).

        Raises:
            FeatureError: naming the row of a NaN/inf value, a duplicate or malformed token, or a
                row-count mismatch.
        """
        if not name or not all(c.isalnum() or c in "_-." for c in name):
            raise FeatureError(f"feature set name {name!r}: use letters, digits, '_', '-' or '.'")
        matrix = np.asarray(matrix, dtype=np.float32)
        tokens = [str(t) for t in tokens]
        if matrix.ndim != 2:
            raise FeatureError(f"feature set {name!r}: expected a 2-d matrix, got shape {matrix.shape}")
        if len(tokens) != matrix.shape[0]:
            raise FeatureError(
                f"feature set {name!r}: {matrix.shape[0]} rows but {len(tokens)} item tokens"
            )
        bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        if len(bad):
            raise FeatureError(
                f"feature set {name!r}: row {bad[0]} (item {tokens[bad[0]]!r}) holds NaN or inf "
                f"({len(bad)} such rows); fix or drop those items"
            )
        seen = {}
        for row, token in enumerate(tokens):
            if not token or any(c in token for c in "\t\n\r"):
                raise FeatureError(f"feature set {name!r}: row {row} has an empty or multi-line token")
            if token in seen:
                raise FeatureError(
                    f"feature set {name!r}: item {token!r} appears twice (rows {seen[token]} and {row})"
                )
            seen[token] = row
        self.root.mkdir(parents=True, exist_ok=True)
        matrix_path, tokens_path = self.files(name)
        replace_atomically(matrix_path, lambda f: np.save(f, matrix), binary=True)
        replace_atomically(tokens_path, lambda f: f.write("\n".join(tokens) + "\n"))
        manifest = self.manifest()
        manifest[name] = dict(info, rows=int(matrix.shape[0]), dim=int(matrix.shape[1]))
        replace_atomically(
            self.root / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        )
        return matrix_path

    def read(self, name):
        """(tokens: list of str, matrix: read-only memory-mapped float32 [rows, dim]).

        Raises:
            FeatureError: the set is not in the manifest, or its files disagree with it.
        """
        manifest = self.manifest()
        matrix_path, tokens_path = self.files(name)
        if name not in manifest:
            available = ", ".join(sorted(manifest)) or "none"
            raise FeatureError(
                f"no feature set {name!r} in {self.root} (looked for {matrix_path.name}, "
                f"{tokens_path.name} and their entry in {MANIFEST}; available: {available}); "
                "create it with `recbole-mm extract`"
            )
        matrix = np.load(matrix_path, mmap_mode="r")
        tokens = tokens_path.read_text(encoding="utf-8").splitlines()
        expected = (manifest[name]["rows"], manifest[name]["dim"])
        if matrix.shape != expected or len(tokens) != expected[0]:
            raise FeatureError(
                f"{matrix_path} is {matrix.shape} with {len(tokens)} tokens in {tokens_path}, but "
                f"{MANIFEST} says {expected}: the files were changed by hand; re-extract them"
            )
        return tokens, matrix

    def aligned(self, name, token2id, n_items, fill="zeros"):
        """Feature set ``name`` as rows aligned to internal item ids, with a mask.

        Args:
            name (str): the feature set.
            token2id (dict): item token -> internal id (RecBole's ``dataset.field2token_id[iid]``).
            n_items (int): number of internal ids, padding id 0 included.
            fill (str): rows of items without the feature: ``zeros`` or ``mean`` (of present rows).

        Returns:
            tuple: (features: torch.FloatTensor [n_items, dim], mask: torch.BoolTensor [n_items],
            True where the item has the feature; row 0, the padding, is zeros and False).
        """
        tokens, matrix = self.read(name)
        return align_rows(tokens, matrix, token2id, n_items, fill, source=str(self.files(name)[0]))


def _check_fill(fill):
    if fill not in FILL_POLICIES:
        raise FeatureError(f"feature fill policy {fill!r}: choose one of {', '.join(FILL_POLICIES)}")


def _fill_missing(features, mask, fill):
    """Give rows without the feature (mask False, padding row 0 excepted) the ``fill`` value."""
    if fill == "mean" and mask.any():
        missing = ~mask
        missing[0] = False
        features[missing] = features[mask].mean(dim=0)
    return features, mask


def align_rows(tokens, matrix, token2id, n_items, fill="zeros", source="features"):
    """Scatter ``matrix`` rows (one per token) into [n_items, dim] by internal id; see ``aligned``."""
    _check_fill(fill)
    ids = np.fromiter((token2id.get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))
    known = ids > 0  # 0 is padding; -1: an item the dataset dropped (filtering), not an error
    if not known.any():
        raise FeatureError(
            f"{source}: none of its {len(tokens)} item tokens is an item of the dataset; "
            "were the features extracted for another dataset?"
        )
    features = torch.zeros(n_items, matrix.shape[1])
    features[ids[known]] = torch.from_numpy(np.asarray(matrix[np.flatnonzero(known)], np.float32))
    mask = torch.zeros(n_items, dtype=torch.bool)
    mask[ids[known]] = True
    logger.debug("%s: %d of %d items have features", source, int(mask.sum()), n_items - 1)
    return _fill_missing(features, mask, fill)


def aligned_field(dataset, field, fill="zeros"):
    """RecBole's route: a ``float_seq`` field of the ``.item`` file as aligned rows and a mask.

    Items whose vector is empty (all zeros after RecBole's padding) count as missing. Returns the
    same as :meth:`FeatureStore.aligned`.
    """
    _check_fill(fill)
    item_feat = dataset.get_item_feature()
    if field not in item_feat.interaction:
        raise FeatureError(
            f"item field {field!r} is not loaded; add it to load_col: {{item: [..., {field}]}}"
        )
    features = item_feat[field].float().clone()  # [n_items, max_len], zero-padded
    mask = (features != 0).any(dim=1)
    mask[0] = False
    return _fill_missing(features, mask, fill)
