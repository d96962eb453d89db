"""Images read, hashed and decoded a batch at a time (in DataLoader workers, or by nvJPEG on
CUDA); broken images are reported, not fatal."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from platform_assets.lib.content_hash import content_hash
from platform_assets.lib.cpu import usable_cores
from platform_assets.lib.images.decode import as_float, decode_or_error
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.torch_device import loader_settings, to_device

PARALLEL_DECODE_BYTES = 16 * 2**20  # ~350 photo-sized JPEGs, ~8,000 of the demo's 64 px ones


class JpegDataset(Dataset):
    """Items are (index, image tensor, error); a broken image gives a zero tensor and its error."""

    def __init__(self, blobs: list[bytes], size: int) -> None:
        self.blobs, self.size = blobs, size

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        return i, *decode_or_error(self.blobs[i], self.size)


class JpegBatch(NamedTuple):
    """One batch of stored images: every photo's content hash, and the ones decoded."""

    start: int  # position of the batch's first photo in the keys
    hashes: list[str]  # content_hash of each photo's bytes (of b"" when missing)
    indices: torch.Tensor  # positions (into the keys) of the decoded photos
    images: torch.Tensor | list[bytes]  # their (n, 3, size, size) uint8 pixels, or their bytes (`decode=False`)
    errors: list[str]  # per decoded photo: "" or why it is not a readable image


class StoredJpegBatches(Dataset):
    """Item k: photos [k·batch_size, (k+1)·batch_size) of `keys`, read from the store (in
    threads) and hashed; those whose hash differs from `known` (all, without it) decoded: a
    worker holds one batch of JPEGs, never the day's. A missing object is an error like a
    broken one."""

    def __init__(
        self,
        store: LakeStore,
        keys: list[str],
        size: int,
        batch_size: int,
        known: Sequence[str | None] | None = None,
        decode: bool = True,
    ) -> None:
        self.store, self.keys, self.size, self.batch_size = store, keys, size, batch_size
        self.known, self.decode = known, decode
        self.bytes_read = 0  # by this process: the first batch, read in line, sizes the rest

    def __len__(self) -> int:
        return -(-len(self.keys) // self.batch_size)

    def __getitem__(self, k: int) -> JpegBatch:
        lo = k * self.batch_size
        blobs = self.store.read_many(self.keys[lo : lo + self.batch_size])
        self.bytes_read += sum(map(len, blobs))
        hashes = [content_hash(b) for b in blobs]
        todo = [i for i, h in enumerate(hashes) if self.known is None or self.known[lo + i] != h]
        indices = torch.tensor([lo + i for i in todo], dtype=torch.int64)
        if not self.decode:
            return JpegBatch(lo, hashes, indices, [blobs[i] for i in todo], [""] * len(todo))
        decoded = [decode_or_error(blobs[i], self.size) for i in todo]  # a missing object reads as b"": "empty file"
        images = (
            torch.stack([d[0] for d in decoded])
            if decoded
            else torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)
        )
        return JpegBatch(lo, hashes, indices, images, [d[1] for d in decoded])


def image_batches(
    blobs: list[bytes], size: int, batch_size: int, device: torch.device, workers: int | None
) -> DataLoader:
    """(indices, uint8 images, errors) batches in order, decoded by `workers` processes (None:
    one per core this process may use, when there is enough to decode; see `decode_workers`)."""
    dataset = JpegDataset(blobs, size)
    settings = loader_settings(device, decode_workers(workers, sum(map(len, blobs))))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **settings)


def stored_image_batches(
    store: LakeStore,
    keys: list[str],
    size: int,
    batch_size: int,
    device: torch.device,
    workers: int | None,
    known: Sequence[str | None] | None = None,
    decode: bool = True,
) -> Iterator[JpegBatch]:
    """The stored images, read, hashed and (those not `known` by hash) decoded batch by batch
    in order (`StoredJpegBatches`). The first batch is read in line; with `workers` None, its
    size decides whether the JPEGs are worth worker processes (`decode_workers`)."""
    dataset = StoredJpegBatches(store, keys, size, batch_size, known, decode)
    if not len(dataset):
        return
    yield dataset[0]
    if len(dataset) > 1:
        settings = loader_settings(device, decode_workers(workers, dataset.bytes_read * len(dataset)))
        if settings["num_workers"] and store.is_s3:  # the S3 client is not fork-safe: workers start clean
            settings["multiprocessing_context"] = "forkserver"
        yield from DataLoader(Subset(dataset, range(1, len(dataset))), batch_size=None, shuffle=False, **settings)


def decode_workers(workers: int | None, jpeg_bytes: int) -> int:
    """`workers` as asked; None is one per core once there are `PARALLEL_DECODE_BYTES` of JPEGs,
    else none: a worker process starts by importing torch (seconds on 2 cores), more than
    decoding a few thousand small images takes in line."""
    if workers is not None:
        return workers
    return usable_cores() if jpeg_bytes >= PARALLEL_DECODE_BYTES else 0


def embedding_batches(
    blobs: list[bytes], size: int, batch_size: int, device: torch.device, workers: int | None
) -> tuple[str, Iterator[tuple[list[int], torch.Tensor, list[str]]]]:
    """The decoder used and (indices, float images on `device`, errors) batches in order: nvJPEG
    when the device is CUDA and torchvision is installed, else Pillow in worker processes."""
    if (gpu := gpu_decoder(device)) is not None:
        return "nvjpeg", gpu(blobs, size, batch_size, device)
    batches = (
        (idx.tolist(), as_float(to_device(batch, device)), list(errors))
        for idx, batch, errors in image_batches(blobs, size, batch_size, device, workers)
    )
    return "pillow", batches


def gpu_decoder(device: torch.device):
    """`gpu_batches` (nvJPEG) when the device is CUDA and torchvision is installed, else None."""
    if device.type != "cuda":
        return None
    try:
        from platform_assets.lib.images.gpu_decode import gpu_batches
    except ImportError:  # torchvision absent (or built for another torch): decode on the CPU
        return None
    return gpu_batches


def stored_embedding_batches(
    store: LakeStore,
    keys: list[str],
    size: int,
    batch_size: int,
    device: torch.device,
    workers: int | None,
    known: Sequence[str | None],
) -> tuple[str, Iterator[tuple[JpegBatch, torch.Tensor]]]:
    """The decoder used and, batch by batch in order, the stored images' `JpegBatch` with its
    decoded photos (those whose hash `known` does not hold) as floats on `device`: nvJPEG on
    CUDA with torchvision, else Pillow in the loader's workers."""
    gpu = gpu_decoder(device)
    batches = stored_image_batches(store, keys, size, batch_size, device, workers, known, decode=gpu is None)
    if gpu is None:
        return "pillow", ((b, as_float(to_device(b.images, device))) for b in batches)

    def on_gpu() -> Iterator[tuple[JpegBatch, torch.Tensor]]:
        for b in batches:
            decoded = list(gpu(b.images, size, max(len(b.images), 1), device))
            images = decoded[0][1] if decoded else torch.empty((0, 3, size, size), device=device)
            yield b._replace(errors=decoded[0][2] if decoded else []), images

    return "nvjpeg", on_gpu()
