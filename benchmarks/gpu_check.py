"""The image path's checks and throughput, on CUDA when there is one: one script, one table.

    python -m benchmarks.gpu_check [--images 2048] [--repeats 3] [--quick]

Self-contained: it needs torch, numpy, Pillow and (for the nvJPEG rows) torchvision — not
Dagster, DuckDB, Polars or pyarrow — so it runs on a bare GPU machine from the source tree.

Rows (each says `skipped: why` where it cannot run):
- decode: Pillow at 224 px from 640x480 JPEGs (~45 KB), with the DCT-domain draft vs a full
  decode, in one process and in one worker per core; images/s and images/s per core.
- augmentation bytes: the integer augmentation's uint8 output hashed at batch sizes 1, 7 and
  64, on 1 thread and on every core, and on the GPU: one hash is the claim (CPU = GPU).
- encoder parity: the GPU's bf16 embeddings vs the CPU's fp32 (min cosine).
- SimCLR determinism: two trainings with one seed on the device give one weights hash.
- pipeline vs bare model, 64 and 224 px, resnet-small and resnet18: images/s from JPEG bytes
  (`embedding_batches`: nvJPEG on CUDA, Pillow workers on CPU) vs the same model on tensors
  already decoded on the device; overhead = 1 - pipeline / bare (goal on a GPU: <= 10 %).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import bench_parser
from platform_assets.lib.cpu import usable_cores
from platform_assets.lib.embeddings.image_encoder import ImageEncoder, train_simclr
from platform_assets.lib.images.augment import augment, draw_params
from platform_assets.lib.images.batches import embedding_batches
from platform_assets.lib.images.decode import as_float, decode
from platform_assets.lib.simulator.images import CLASSES, STYLES, encode_jpeg, render
from platform_assets.lib.torch_device import inference_mode, pick_device, reproducible
from platform_assets_tests.support.augment_oracle import float_reference

DISTINCT = 96  # distinct photos rendered; the benchmark cycles through them (decode cost is per byte)


def photos(n: int, width: int, height: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    pool = [encode_jpeg(render(rng, CLASSES[i % 6], STYLES[i % 4], width, height)) for i in range(min(n, DISTINCT))]
    return [pool[i % len(pool)] for i in range(n)]


def full_decode(data: bytes, size: int) -> torch.Tensor:
    """The baseline: decode every pixel, then crop and resize (no DCT-domain draft)."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    w, h = rgb.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)


class Decoded(Dataset):
    def __init__(self, blobs: list[bytes], fn: Callable[[bytes, int], torch.Tensor], size: int) -> None:
        self.blobs, self.fn, self.size = blobs, fn, size

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.fn(self.blobs[i], self.size)


def rate(fn: Callable[[], int], repeats: int) -> float:
    """Median items/s of `fn` (which returns how many items it did), after one warm-up."""
    fn()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn()
        runs.append(n / (time.perf_counter() - t))
    return statistics.median(runs)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decode_rows(blobs: list[bytes], repeats: int) -> list[dict]:
    cores = usable_cores()
    rows = []
    for name, fn in (("draft (ours)", decode), ("full decode (baseline)", full_decode)):
        one = rate(lambda fn=fn: sum(1 for b in blobs[:256] if fn(b, 224) is not None), repeats)

        def workers(fn=fn) -> int:
            loader = DataLoader(Decoded(blobs, fn, 224), batch_size=64, num_workers=cores)
            return sum(len(b) for b in loader)

        many = rate(workers, repeats)
        rows.append(
            {
                "check": f"decode 640x480 -> 224, {name}",
                "1 process img/s": round(one),
                f"{cores} workers img/s": round(many),
                "img/s per core": round(many / cores),
            }
        )
    rows.append(
        {"check": "decode: draft / full", "ratio": round(rows[0]["1 process img/s"] / rows[1]["1 process img/s"], 2)}
    )
    return rows


def augmentation_row(blobs: list[bytes], device: torch.device) -> dict:
    images = torch.stack([decode(b, 224) for b in blobs[:64]])
    params = draw_params(0, list(range(len(images))), 0)

    def digest(out: torch.Tensor) -> str:
        return hashlib.sha256(out.cpu().contiguous().numpy().tobytes()).hexdigest()[:16]

    hashes = {}
    for batch in (1, 7, 64):
        out = torch.cat([augment(images[s : s + batch], params[s : s + batch]) for s in range(0, len(images), batch)])
        hashes[f"cpu batch {batch}"] = digest(out)
    threads = torch.get_num_threads()
    for n in sorted({1, usable_cores()}):
        torch.set_num_threads(n)
        hashes[f"cpu {n} threads"] = digest(augment(images, params))
    torch.set_num_threads(threads)
    if device.type == "cuda":
        hashes["gpu batch 64"] = digest(augment(images.to(device), params))
        hashes["gpu batch 7"] = digest(
            torch.cat([augment(images[s : s + 7].to(device), params[s : s + 7]) for s in range(0, 64, 7)])
        )
    else:
        hashes["gpu"] = "skipped: no CUDA device"
    distinct = {h for h in hashes.values() if not h.startswith("skipped")}
    return {"check": "augmentation bytes (64 images, 224 px)", "identical": len(distinct) == 1, **hashes}


def augmentation_speed_row(blobs: list[bytes], device: torch.device, repeats: int) -> dict:
    images = torch.stack([decode(b, 224) for b in blobs[:64]]).to(device)
    params = draw_params(0, list(range(len(images))), 0)
    speed = {}
    for name, fn in (("integer (ours)", augment), ("float (previous)", float_reference)):

        def run(fn=fn) -> int:
            fn(images, params)
            sync(device)
            return len(images)

        speed[f"{name} img/s"] = round(rate(run, repeats), 1)
    ratio = speed["integer (ours) img/s"] / speed["float (previous) img/s"]
    return {"check": f"augmentation speed, 224 px, {device}", **speed, "integer / float": round(ratio, 2)}


def parity_row(blobs: list[bytes], device: torch.device) -> dict:
    if device.type != "cuda":
        return {"check": "encoder parity, GPU bf16 vs CPU fp32", "result": "skipped: no CUDA device"}
    torch.manual_seed(0)
    model = ImageEncoder("resnet18").eval()
    images = as_float(torch.stack([decode(b, 224) for b in blobs[:128]]))
    with torch.inference_mode():
        cpu = model(images)
    model = model.to(device)
    with inference_mode(device):
        gpu = model(images.to(device)).float().cpu()
    cosine = F.cosine_similarity(cpu, gpu, dim=1)
    return {
        "check": "encoder parity, GPU bf16 vs CPU fp32 (resnet18, 128 images)",
        "min cosine": round(cosine.min().item(), 6),
    }


def determinism_row(blobs: list[bytes], device: torch.device) -> dict:
    images = torch.stack([decode(b, 64) for b in blobs[:256]])
    versions = [train_simclr(images, 1, 64, 2e-3, 0, device).version for _ in range(2)]
    return {
        "check": f"SimCLR determinism on {device} (256 images, 1 epoch)",
        "identical": versions[0] == versions[1],
        "versions": versions,
    }


def pipeline_vs_bare(model: torch.nn.Module, blobs: list[bytes], size: int, device: torch.device, args) -> dict:
    """images/s from JPEG bytes through `embedding_batches`, and on tensors already on the device."""
    decoded = as_float(torch.stack([decode(b, size) for b in blobs])).to(device)

    def bare() -> int:
        with inference_mode(device):
            for s in range(0, len(blobs), args.batch_size):
                model(decoded[s : s + args.batch_size])
        sync(device)
        return len(blobs)

    def pipeline() -> int:
        with inference_mode(device):
            for _, batch, _ in embedding_batches(blobs, size, args.batch_size, device, args.workers)[1]:
                model(batch)
        sync(device)
        return len(blobs)

    with reproducible():  # the CPU model on the same threads as in the assets
        b, p = rate(bare, args.repeats), rate(pipeline, args.repeats)
    return {"pipeline img/s": round(p, 1), "bare img/s": round(b, 1), "overhead": f"{max(0.0, 1 - p / b):.1%}"}


def throughput_rows(blobs: list[bytes], device: torch.device, args) -> list[dict]:
    rows = []
    decoder = embedding_batches([], 64, 1, device, 0)[0]
    subset = blobs if device.type == "cuda" or not args.quick else blobs[:256]
    for size in (64, 224):
        for arch in ["resnet-small"] if args.quick else ["resnet-small", "resnet18"]:
            model = ImageEncoder(arch).to(device).eval()
            check = f"pipeline vs bare, {arch}, {size} px from 640x480 JPEGs ({decoder})"
            rows.append({"check": check, **pipeline_vs_bare(model, subset, size, device, args)})
    if args.quick:
        rows.append({"check": "pipeline vs bare, resnet18", "result": "skipped: --quick"})
    return rows


def main() -> None:
    parser = bench_parser()
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="decode workers (default: one per core)")
    parser.add_argument("--quick", action="store_true", help="CPU-sized: 256 images, resnet-small only")
    args = parser.parse_args()
    device = pick_device("auto")
    blobs = photos(args.images, 640, 480)
    rows = [
        *decode_rows(blobs[: min(len(blobs), 1024)], args.repeats),
        augmentation_row(blobs, device),
        augmentation_speed_row(blobs, device, args.repeats),
        parity_row(blobs, device),
        determinism_row(blobs, device),
        *throughput_rows(blobs, device, args),
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "no CUDA device"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores ({usable_cores()} usable), {name}, torch {torch.__version__}"
    )
    for row in rows:
        print("| " + " | ".join(f"{k}: {v}" if k != "check" else str(v) for k, v in row.items()) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
