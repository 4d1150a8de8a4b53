"""Image feature extraction, end to end vs the network alone, with the same encoder.

End to end: ``ImageEncoder.encode`` on JPEG files (decode + resize + crop in ``--workers``
DataLoader processes, then the network). Network alone: the same network on pictures already
decoded, in memory. The issue's target: end to end >= 50% of the network-only rate.

Pictures: real photographs from ``skimage.data`` written as JPEGs (repeated to ``--images``
files); encoder: EfficientNet-Lite0 with its offline ImageNet weights.

    python benchmarks/image_extraction.py --images 512 --batch-size 64
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recbole_mm.dataset_tools.encoders.image import DEFAULT_IMAGE_ENCODER, ImageEncoder
from recbole_mm.record import describe_device


def write_pictures(folder, count):
    """``count`` JPEG files made from skimage's colour photographs (list of Path)."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.cat()]
    paths = []
    for index in range(count):
        path = folder / f"{index}.jpg"
        Image.fromarray(photos[index % len(photos)]).save(path, quality=90)
        paths.append(path)
    return paths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default=DEFAULT_IMAGE_ENCODER)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: encoder's)")
    parser.add_argument("--device", default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    encoder = ImageEncoder(args.encoder, device=args.device, batch_size=args.batch_size,
                           num_workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_pictures(Path(tmp), args.images)
        decoded = [encoder.load(p) for p in paths[: args.batch_size]]
        encoder.embed(decoded)  # warm-up

        start = time.perf_counter()
        for begin in range(0, args.images, args.batch_size):
            encoder.embed(decoded[: min(args.batch_size, args.images - begin)])
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()
        network_seconds = time.perf_counter() - start

        start = time.perf_counter()
        features = encoder.encode(paths)
        end_to_end_seconds = time.perf_counter() - start
    assert np.isfinite(features).all()

    print(f"command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"device: {describe_device(encoder.device)}; encoder {args.encoder}; batch {args.batch_size}; "
          f"workers {encoder.num_workers}; precision {'fp16' if encoder.device.type == 'cuda' else 'fp32'}")
    print(f"images: {args.images} JPEGs from skimage.data")
    print(f"network only:  {args.images / network_seconds:9.1f} images/s")
    print(f"end to end:    {args.images / end_to_end_seconds:9.1f} images/s")
    print(f"end to end / network only: {network_seconds / end_to_end_seconds:6.1%}")


if __name__ == "__main__":
    main()
