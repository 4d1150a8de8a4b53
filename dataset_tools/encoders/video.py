"""Video encoder: one vector per video file from a torchvision Kinetics-400 video network.

The networks are torchvision's 3-d ResNets ``r2plus1d_18`` (the default), ``r3d_18`` and
``mc3_18``; the vector is their pooled output before the classifier (512-d). Their Kinetics weights
download from torchvision (``pretrained=True``); offline, pass ``weights=FILE``, a state dict of the
same architecture saved with ``torch.save`` (its classifier, if any, is ignored).

Videos are decoded with PyAV in DataLoader worker processes: ``frames`` frames (16 by default) at the
centres of equal segments of the whole video, then the weights' own preprocessing (resize to
128 x 171, centre crop 112 x 112, Kinetics mean and std). The network runs under
``torch.inference_mode`` and, on a GPU, in float16. Unreadable files are logged and left out.
"""

import logging
from functools import partial

import numpy as np
import torch

from recbole_mm.dataset_tools.encoders.media import (
    default_num_workers, encode_files, half_precision, load_state_dict_file, require, resolve_device,
)
from recbole_mm.dataset_tools.encoders.text import EncoderError

logger = logging.getLogger(__name__)

VIDEO_MODELS = ("r2plus1d_18", "r3d_18", "mc3_18")
DEFAULT_VIDEO_ENCODER = "r2plus1d_18"


def _count_frames(path):
    """Frames of the first video stream of ``path``, counted packet by packet (int)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def sample_frame_indices(total, frames):
    """Indices of ``frames`` frames at the centres of equal segments of ``total`` frames
    (int64 [frames]; repeated when the video is shorter)."""
    return ((np.arange(frames) + 0.5) * total / frames).astype(np.int64)


def load_video(path, frames, transform):
    """Decode ``frames`` uniformly sampled frames of ``path`` and apply ``transform``.

    Args:
        transform (callable): uint8 [T, 3, H, W] -> float [3, T, h, w] (a torchvision preset).

    Returns:
        torch.Tensor: float [3, frames, h, w].
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = stream.frames or _count_frames(path)  # some containers do not store the count
        wanted = sample_frame_indices(max(total, 1), frames)
        kept = []
        for index, frame in enumerate(container.decode(stream)):
            repeats = int((wanted == index).sum())  # > 1 when the video has fewer frames
            if repeats:
                kept += [frame.to_ndarray(format="rgb24")] * repeats  # [H, W, 3] uint8
            if len(kept) == frames:
                break
    if not kept:
        raise ValueError("no decodable video frame")
    kept += kept[-1:] * (frames - len(kept))  # the stored count was too high: repeat the last one
    clip = torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2)  # [T, 3, H, W] uint8
    return transform(clip)


class VideoEncoder:
    """Encode video files into fixed-size vectors.

    Args:
        name (str): ``r2plus1d_18``, ``r3d_18`` or ``mc3_18``.
        weights (str or None): a local state dict file to load instead of torchvision's weights.
        pretrained (bool): with no ``weights``: download torchvision's Kinetics-400 weights (False:
            random ones, for tests of the plumbing only).
        device (str or None): ``cuda``, ``cpu``...; default: cuda when available.
        batch_size (int): clips per forward pass.
        num_workers (int or None): decoding processes; default min(4, CPU count).
        frames (int): frames sampled per video.
    """

    def __init__(self, name=DEFAULT_VIDEO_ENCODER, weights=None, pretrained=True, device=None,
                 batch_size=8, num_workers=None, frames=16):
        import torchvision

        require("av", "av")
        if name not in VIDEO_MODELS:
            raise EncoderError(f"unknown video encoder {name!r}: choose one of {', '.join(VIDEO_MODELS)}")
        kinetics = torchvision.models.get_model_weights(name).DEFAULT
        try:
            network = torchvision.models.get_model(
                name, weights=kinetics if pretrained and weights is None else None
            )
        except (OSError, RuntimeError) as error:  # no network: urllib's URLError is an OSError
            raise EncoderError(
                f"cannot download the weights of video model {name!r} ({error}); offline, pass "
                "--weights FILE with a state dict of this architecture saved with torch.save"
            ) from error
        self.dim = network.fc.in_features
        network.fc = torch.nn.Identity()  # the pooled features, not the Kinetics classes
        if weights is not None:
            load_state_dict_file(network, weights, ignore=("fc.",))
        elif not pretrained:
            logger.warning("video encoder %s has RANDOM weights: its features mean nothing", name)
        self.name = name
        self.weights = str(weights) if weights is not None else ("torchvision" if pretrained else "random")
        transform = kinetics.transforms()
        self.settings = {"frames": frames, "resize": transform.resize_size, "crop": transform.crop_size,
                         "weights": self.weights}
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.load = partial(load_video, frames=frames, transform=transform)

    @torch.inference_mode()
    def embed(self, clips):
        """Pooled features of decoded clips (list of float [3, T, h, w]): float32 [B, dim] array."""
        with half_precision(self.device):
            features = self.network(torch.stack(clips).to(self.device))
        return features.float().cpu().numpy()

    def encode(self, paths):
        """Vectors of the video files ``paths``: float32 [len(paths), dim], NaN rows for files that
        cannot be read (logged)."""
        return encode_files(paths, self.load, self.embed, self.dim, self.batch_size, self.num_workers,
                            "video", pin_memory=self.device.type == "cuda")
