"""Text feature extraction throughput: recbole_mm's TextEncoder vs a naive loop, same model.

The naive loop tokenises each batch in the main process, in the input order (much padding), in
float32. TextEncoder sorts texts by length, tokenises in worker processes (``--workers``) and uses
float16 on a GPU. Both run the same model on the same texts in this process; the script checks
they give the same vectors (cosine > 0.999) and prints texts/s and the ratio.

Default texts: the ~1 KB movie descriptions of ml-1m (``llm_response_item.json`` in
``../shared/datasets``); default model: all-MiniLM-L6-v2 (offline copy when installed).

    python benchmarks/text_extraction.py --texts 1024 --batch-size 128
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from recbole_mm.dataset_tools.encoders.text import DEFAULT_TEXT_ENCODER, TextEncoder
from recbole_mm.record import describe_device

SHARED = Path(os.environ.get("RECBOLE_MM_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def naive(encoder, texts, batch_size):
    """Batches in input order, tokenised in the main process, float32."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = encoder.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                      max_length=encoder.max_length, return_tensors="pt").to(encoder.device)
            states = encoder.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(((states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).cpu().numpy())
    return np.concatenate(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default=DEFAULT_TEXT_ENCODER)
    parser.add_argument("--texts", type=int, default=1024, help="how many descriptions to encode")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="tokenising processes (default: encoder's)")
    parser.add_argument("--device", default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    descriptions = json.loads((SHARED / "ml-1m" / "implicit" / "llm_response_item.json").read_text())
    texts = list(descriptions.values())[: args.texts]
    encoder = TextEncoder(args.encoder, device=args.device, batch_size=args.batch_size,
                          num_workers=args.workers, normalize=False)
    encoder.encode(texts[: args.batch_size])  # warm-up: load kernels, start nothing else

    start = time.perf_counter()
    reference = naive(encoder, texts, args.batch_size)
    naive_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = encoder.encode(texts)
    ours_seconds = time.perf_counter() - start

    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.999, f"vectors differ (min cosine {cosine.min():.4f})"
    print(f"command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"device: {describe_device(encoder.device)}; encoder {args.encoder}; batch {args.batch_size}; "
          f"workers {encoder.num_workers}; precision {'fp16' if encoder.device.type == 'cuda' else 'fp32'}")
    print(f"texts: {len(texts)} ml-1m descriptions, mean {np.mean([len(t) for t in texts]):.0f} characters")
    print(f"naive loop:   {len(texts) / naive_seconds:9.1f} texts/s")
    print(f"TextEncoder:  {len(texts) / ours_seconds:9.1f} texts/s")
    print(f"speed-up:     {naive_seconds / ours_seconds:9.2f}x  (min cosine {cosine.min():.5f})")


if __name__ == "__main__":
    main()
