"""Audio encoder: one vector per sound file from a transformers audio model.

The model (hub name or local folder, with its feature extractor) decides the pooling:

- wav2vec2, HuBERT, WavLM, data2vec-audio (self-supervised speech models): mean of the last hidden
  state over the frames of the clip (clips of different lengths are never padded together: padding
  changes these models' outputs);
- AST (Audio Spectrogram Transformer): its pooled output;
- Whisper: mean of the encoder's last hidden state over the frames of the clip (Whisper hears at
  most 30 s).

Sound files are decoded with ``soundfile`` (WAV, FLAC, OGG, MP3...) in DataLoader worker processes,
mixed down to mono, cut to the first ``max_seconds`` and resampled to the model's rate with a
polyphase filter (``scipy.signal.resample_poly``). The model runs under ``torch.inference_mode``
and, on a GPU, in float16. Unreadable files are logged and left out.

No audio model ships its weights in a PyPI package: offline, pass a local model folder.
"""

import math
from functools import partial

import numpy as np
import torch

from recbole_mm.dataset_tools.encoders.media import (
    default_num_workers, encode_files, half_precision, require, resolve_device,
)
from recbole_mm.dataset_tools.encoders.text import EncoderError

MIN_SECONDS = 0.1  # shorter clips are too short for the models' convolution stacks


def load_audio(path, sampling_rate, max_seconds=None):
    """Decode ``path`` as mono float32 samples at ``sampling_rate`` (Hz), at most ``max_seconds``.

    Returns:
        numpy.ndarray: float32 [samples].
    """
    import soundfile
    from scipy.signal import resample_poly

    with soundfile.SoundFile(path) as sound:
        rate = sound.samplerate
        frames = -1 if max_seconds is None else int(max_seconds * rate)
        samples = sound.read(frames=frames, dtype="float32", always_2d=True)  # [samples, channels]
    wave = samples.mean(axis=1)
    if len(wave) < MIN_SECONDS * rate:
        raise ValueError(f"{len(wave)} samples at {rate} Hz: shorter than {MIN_SECONDS} s")
    if rate != sampling_rate:
        common = math.gcd(rate, sampling_rate)
        wave = resample_poly(wave, sampling_rate // common, rate // common)
    return wave.astype(np.float32)


def masked_mean(states, mask):
    """Mean of ``states`` [B, T, dim] over the positions where ``mask`` [B, T] is true: [B, dim]."""
    states = states.float()  # float16 sums over long clips could overflow
    weights = mask.unsqueeze(-1).float()
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def _rows_by_length(waves):
    """Indices of ``waves`` grouped by length (list of lists, in order of first appearance)."""
    groups = {}
    for row, wave in enumerate(waves):
        groups.setdefault(len(wave), []).append(row)
    return list(groups.values())


class AudioEncoder:
    """Encode sound files into fixed-size vectors.

    Args:
        name_or_path (str): transformers hub name (``facebook/wav2vec2-base``,
            ``facebook/hubert-base-ls960``, ``MIT/ast-finetuned-audioset-10-10-0.4593``,
            ``openai/whisper-base``...) or a local folder holding the model and its feature
            extractor (``save_pretrained``).
        device (str or None): ``cuda``, ``cpu``...; default: cuda when available.
        batch_size (int): clips per forward pass.
        num_workers (int or None): decoding processes; default min(4, CPU count).
        max_seconds (float or None): encode the first ``max_seconds`` of each file (None: all).
    """

    def __init__(self, name_or_path, device=None, batch_size=8, num_workers=None, max_seconds=30.0):
        from transformers import AutoFeatureExtractor, AutoModel

        require("soundfile", "soundfile")
        try:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path)
            model = AutoModel.from_pretrained(name_or_path)
        except OSError as error:
            raise EncoderError(
                f"cannot load audio encoder {name_or_path!r}: {error}. Offline, pass a local folder "
                "holding the model and its feature extractor (save_pretrained)"
            ) from error
        kind = model.config.model_type
        if kind == "whisper":
            self.pooling, model = "whisper-encoder-mean", model.get_encoder()
        elif kind == "audio-spectrogram-transformer":
            self.pooling = "pooler"
        elif hasattr(model, "_get_feat_extract_output_lengths"):  # wav2vec2, HuBERT, WavLM...
            self.pooling = "mean"
        else:
            raise EncoderError(
                f"audio encoder {name_or_path!r} is a {kind!r} model; supported: wav2vec2-style "
                "speech models (wav2vec2, HuBERT, WavLM, data2vec-audio), AST and Whisper"
            )
        self.name = name_or_path
        self.dim = model.config.hidden_size
        self.sampling_rate = self.feature_extractor.sampling_rate
        self.settings = {"pooling": self.pooling, "sampling_rate": self.sampling_rate,
                         "max_seconds": max_seconds}
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.load = partial(load_audio, sampling_rate=self.sampling_rate, max_seconds=max_seconds)

    def _inputs(self, waves, **options):
        """The feature extractor's tensors for ``waves``, on the device (BatchFeature)."""
        return self.feature_extractor(
            waves, sampling_rate=self.sampling_rate, return_tensors="pt", **options
        ).to(self.device)

    @torch.inference_mode()
    def embed(self, waves):
        """Vectors of decoded clips (list of float32 [samples] at the model's rate): [B, dim] array."""
        with half_precision(self.device):
            if self.pooling == "pooler":
                inputs = self._inputs(waves)["input_values"]  # [B, frames, mel bins]
                vectors = self.model(input_values=inputs).pooler_output
            elif self.pooling == "whisper-encoder-mean":
                inputs = self._inputs(waves, return_attention_mask=True)  # 30 s of mel frames
                states = self.model(inputs["input_features"]).last_hidden_state  # [B, frames / 2, dim]
                vectors = masked_mean(states, inputs["attention_mask"][:, ::2].bool())
            else:
                # padding would change a wav2vec2-style model's output (its group norm and
                # positional convolution see it): only clips of equal length share a forward pass,
                # so that a vector never depends on its batch (clips cut at max_seconds mostly are)
                vectors = torch.empty(len(waves), self.dim, device=self.device)
                for rows in _rows_by_length(waves):
                    inputs = self._inputs([waves[r] for r in rows])["input_values"]  # [b, samples]
                    vectors[rows] = self.model(inputs).last_hidden_state.float().mean(dim=1)
        return vectors.float().cpu().numpy()

    def encode(self, paths):
        """Vectors of the sound files ``paths``: float32 [len(paths), dim], NaN rows for files that
        cannot be read (logged)."""
        return encode_files(paths, self.load, self.embed, self.dim, self.batch_size, self.num_workers,
                            "audio", pin_memory=self.device.type == "cuda")
