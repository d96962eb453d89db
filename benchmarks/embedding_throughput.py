"""Benchmark: image-embedding pipeline throughput vs the bare model's forward pass.

    .venv/bin/python -m benchmarks.embedding_throughput [--images 4096] [--batch-size 256] [--repeats 3]

Pipeline: JPEG bytes -> DataLoader workers decode and resize -> (pinned, non-blocking) copy
-> model, as `embeddings/image_embeddings` runs it. Bare: the same model on the same batch
size and device over tensors already decoded in memory. Prints images/s for each and the
pipeline's overhead (goal: at most 10 %).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from benchmarks.common import bench_parser
from platform_assets.lib.embeddings.device import inference_mode, pick_device, to_device
from platform_assets.lib.embeddings.image_encoder import ImageEncoder
from platform_assets.lib.embeddings.images import as_float, decode, image_batches
from platform_assets.lib.simulator.images import encode_jpeg, render
from platform_assets.lib.simulator.world import CLASSES, STYLES


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    blobs = [encode_jpeg(render(rng, CLASSES[i % 6], STYLES[i % 4])) for i in range(args.images)]
    decoded = as_float(torch.stack([decode(b) for b in blobs]))
    device = pick_device("auto")
    model = ImageEncoder().to(device).eval()

    def pipeline() -> float:
        t = time.perf_counter()
        with inference_mode(device):
            for _, batch, _ in image_batches(blobs, args.batch_size, device, args.workers):
                model(as_float(to_device(batch, device))).float().cpu()
        return args.images / (time.perf_counter() - t)

    def bare() -> float:
        t = time.perf_counter()
        with inference_mode(device):
            for start in range(0, args.images, args.batch_size):
                model(decoded[start : start + args.batch_size].to(device)).float().cpu()
        return args.images / (time.perf_counter() - t)

    bare(), pipeline()  # warm-up
    runs = {"pipeline": [], "bare": []}
    for _ in range(args.repeats):
        runs["bare"].append(bare())
        runs["pipeline"].append(pipeline())
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, device {device}, torch {torch.__version__}",
                "images": args.images,
                "batch_size": args.batch_size,
                "workers": args.workers,
                "images_per_second": {k: round(v, 1) for k, v in med.items()},
                "pipeline_overhead": round(1 - med["pipeline"] / med["bare"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
