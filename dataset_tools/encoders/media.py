"""What the image, audio and video encoders share: decoding files in worker processes, leaving
unreadable ones out, half precision on a GPU, and loading a local state dict.

An encoder hands :func:`encode_files` a picklable ``load(path)`` (decode + resize, run in the
DataLoader's workers) and an ``embed(samples)`` (the model, run in the main process). A file that
``load`` cannot read is logged with the reason and gets a NaN row: the extraction leaves such items
out of the feature set and reports them, and the run goes on.
"""

import importlib
import logging
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from recbole_mm.dataset_tools.encoders.text import EncoderError

logger = logging.getLogger(__name__)


def require(module, package):
    """Import ``module`` (a decoder), or raise :class:`EncoderError` saying which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EncoderError(
            f"decoding these files needs the {package} package: pip install {package}"
        ) from None


def default_num_workers():
    """Decoding worker processes by default: min(4, CPU count) (int)."""
    return min(4, os.cpu_count() or 1)


def resolve_device(device):
    """``torch.device(device)``; default: cuda when available, else cpu."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def half_precision(device):
    """float16 autocast on a GPU, nothing on the CPU (context manager)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


class _Decoding(Dataset):
    """Item i: (i, load(paths[i]), None), or (i, None, reason) when the file cannot be read."""

    def __init__(self, paths, load):
        self.paths, self.load = paths, load

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        try:
            return index, self.load(self.paths[index]), None
        # decoders raise many unrelated types (PIL, libsndfile, FFmpeg, OSError...): any failure
        # to read one file must leave that item out, not end a run over thousands of files
        except Exception as error:  # noqa: BLE001
            return index, None, f"{type(error).__name__}: {error}"


def _collate(samples):
    """(indices of decoded items, their samples, [(index, reason)] of the unreadable ones)."""
    decoded = [(index, sample) for index, sample, reason in samples if reason is None]
    failed = [(index, reason) for index, _, reason in samples if reason is not None]
    return [index for index, _ in decoded], [sample for _, sample in decoded], failed


def encode_files(paths, load, embed, dim, batch_size, num_workers, kind, pin_memory=False):
    """Encode media files, decoding them in ``num_workers`` worker processes.

    Args:
        paths (list of str): the files.
        load (callable): path -> one decoded sample; picklable (a module-level function or a
            ``functools.partial`` of one), as it runs in the workers.
        embed (callable): list of samples -> array-like [len(samples), dim].
        dim (int): size of the vectors.
        batch_size (int): files per batch.
        num_workers (int): decoding processes; 0 decodes in the main process.
        kind (str): what the files are (``image``...), for the log.
        pin_memory (bool): hand batches over in page-locked memory (faster copies to a GPU).

    Returns:
        numpy.ndarray: float32 [len(paths), dim], in the order of ``paths``; the rows of files that
        could not be read are NaN (each logged as a warning with the reason).
    """
    out = np.full((len(paths), dim), np.nan, dtype=np.float32)
    loader = DataLoader(
        _Decoding(list(paths), load), batch_size=batch_size, num_workers=num_workers,
        collate_fn=_collate, pin_memory=pin_memory,
    )
    for indices, samples, failed in loader:
        for index, reason in failed:
            logger.warning(
                "%s: cannot read this %s file (%s); its item is left out", paths[index], kind, reason
            )
        if indices:
            out[indices] = np.asarray(embed(samples), dtype=np.float32)
    return out


def load_state_dict_file(model, path, ignore=()):
    """Load the weights in ``path`` (a ``torch.save``-d state dict) into ``model``, strictly.

    Args:
        model (torch.nn.Module): the architecture.
        path (str or Path): the file; a dict holding the state dict under ``state_dict`` or
            ``model`` (training checkpoints) is accepted too.
        ignore (tuple of str): key prefixes of the file to drop (e.g. a classifier the model lacks).

    Raises:
        EncoderError: naming the file and the first keys that do not match the architecture.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise EncoderError(f"{path}: not a readable state dict file ({error})") from None
    if isinstance(state, dict):
        state = state.get("state_dict", state.get("model", state))
    if not isinstance(state, dict):
        raise EncoderError(f"{path}: holds a {type(state).__name__}, not a state dict")
    state = {key: value for key, value in state.items() if not key.startswith(tuple(ignore))}
    advice = "give the state dict of the same model (model.state_dict() saved with torch.save)"
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # same keys, other shapes
        raise EncoderError(f"{path}: {error}; {advice}") from None
    if result.missing_keys or result.unexpected_keys:
        raise EncoderError(
            f"{path}: its weights do not fit the {type(model).__name__} architecture (missing "
            f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}); {advice}"
        )
