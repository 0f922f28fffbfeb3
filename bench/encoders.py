"""Encoders through transfuse against the bare libraries on the same inputs.

Text: ``text.sentence-transformer`` (frozen, the packaged all-MiniLM-L6-v2) against bare
``SentenceTransformer.encode`` on the same 5,000 real texts (dslabs/trump_tweets, 2-320
characters). Three transfuse paths: ``embed()``, the frozen-input path a pipeline uses
(:class:`transfuse.cache.FrozenEmbedder` filling an empty cache: hashing, dedupe,
length-sorted batches, shard writes) and, for the record, the row-order batches of 128
that the data path used before (the cause of the slow cold runs). Image: ``image.timm``
(EfficientNet-Lite0, packaged weights) against a bare timm forward on the same batch.
Target: ratio >= 0.98.

    python bench/encoders.py                     # CPU; over 20 min on 2 cores at load 12
    python bench/encoders.py --rows 1000 --repeat 1
    python bench/encoders.py --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from perfkit import (
    add_device_args,
    best_time,
    device_manager,
    machine,
    print_table,
    real_texts,
    synchronize,
)


def text_rows(args: argparse.Namespace, device) -> list[list[object]]:
    """Seconds and sentences/s for bare encode and the transfuse paths."""
    from transfuse.cache import EmbeddingCache, FrozenEmbedder, row_keys
    from transfuse_text import SentenceTransformerOptions
    from transfuse_text.sentence import SentenceTransformerEncoder, load_sentence_transformer

    texts = real_texts(args.rows)
    series = pd.Series(texts, name="text")
    encoder = SentenceTransformerEncoder(SentenceTransformerOptions(), device).to(device.device)
    bare = load_sentence_transformer(encoder.model_path).to(device.device)
    bare.max_seq_length = encoder.max_length

    def run_bare() -> torch.Tensor:
        with device.autocast():
            return bare.encode(texts, batch_size=args.batch_size, convert_to_tensor=True)

    def run_embed() -> torch.Tensor:
        return encoder.embed(series)

    def run_frozen() -> torch.Tensor:
        with tempfile.TemporaryDirectory() as root:  # an empty cache: every row computed
            cache = EmbeddingCache("bench", encoder.output_dim, root=Path(root))
            embedder = FrozenEmbedder(encoder, device, cache, batch_size=args.batch_size)
            return embedder.embed(series, row_keys(series))

    def run_row_order() -> torch.Tensor:
        parts = []
        encoder.eval()
        with device.inference():
            for start in range(0, len(series), 128):
                batch = device.move(encoder.prepare(series.iloc[start : start + 128]))
                parts.append(encoder(batch).float().cpu())
        return torch.cat(parts)

    with device.autocast():  # warm up (allocator, kernels) on a few batches
        bare.encode(texts[: 4 * args.batch_size], batch_size=args.batch_size)
    encoder.embed(series.iloc[: 4 * args.batch_size])
    paths = {
        "bare SentenceTransformer.encode": run_bare,
        "transfuse encoder.embed()": run_embed,
        "transfuse frozen input (cold cache)": run_frozen,
        "row-order batches of 128 (before)": run_row_order,
    }
    seconds = {name: float("inf") for name in paths}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.repeat):  # interleaved, so load changes hit every path alike
        for name, fn in paths.items():
            start = time.perf_counter()
            outputs[name] = fn()
            synchronize(device)
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    base = seconds["bare SentenceTransformer.encode"]
    reference = outputs["bare SentenceTransformer.encode"].float().cpu()
    rows = []
    for name in paths:
        diff = float((outputs[name].float().cpu() - reference).abs().max())
        rows.append([name, seconds[name], len(texts) / seconds[name], base / seconds[name], diff])
    return rows


def image_rows(args: argparse.Namespace, device) -> list[list[object]]:
    """Forward seconds for image.timm against the bare timm model on the same batch."""
    from transfuse_image import TimmOptions
    from transfuse_image.encoder import TimmEncoder

    encoder = TimmEncoder(TimmOptions(), device).to(device.device)
    bare = encoder.model  # the same weights; called directly, as a user of timm would
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(args.images, 64, 96, 3), dtype=np.uint8)
    images = pd.Series(list(pixels), name="image")
    batch = device.move(encoder.prepare(images))

    def run_bare() -> torch.Tensor:
        with torch.inference_mode(), device.autocast():
            return bare(batch["image"])

    def run_encoder() -> torch.Tensor:
        with device.inference():
            return encoder(batch)

    run_bare(), run_encoder()
    paths = {"bare timm forward": run_bare, "image.timm forward": run_encoder}
    seconds = {name: float("inf") for name in paths}
    order = list(paths.items())
    for _ in range(max(args.repeat, 3)):
        for name, fn in order:  # alternate who goes first: the machine drifts within a round
            seconds[name] = min(seconds[name], best_time(fn, 1, device))
        order.reverse()
    base = seconds["bare timm forward"]
    diff = float((run_encoder().float() - run_bare().float()).abs().max())
    return [
        [name, seconds[name], args.images / seconds[name], base / seconds[name], diff]
        for name in paths
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_args(parser)
    parser.add_argument("--rows", type=int, default=5000, help="texts to embed")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("--images", type=int, default=64, help="images in the batch")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--skip-image", action="store_true")
    args = parser.parse_args()
    device = device_manager(args)
    print(f"machine: {machine(device)}")
    header = ["path", "seconds", "rows/s", "ratio to bare", "max |diff|"]
    if not args.skip_text:
        title = f"Text: {args.rows} texts, all-MiniLM-L6-v2, batch {args.batch_size}"
        print_table(title, header, text_rows(args, device))
    if not args.skip_image:
        title = f"Image: EfficientNet-Lite0, a batch of {args.images} images (224x224)"
        print_table(title, header, image_rows(args, device))


if __name__ == "__main__":
    main()
