"""JPEG decode on the GPU for the embeddings' forward pass: nvJPEG (torchvision's
`decode_jpeg` on a CUDA device) decodes each batch and the centred square is resized on the
GPU, while the previous batch's forward pass runs; the CPU only hands over the bytes.

Imported only when the device is CUDA and torchvision is installed (`embedding_batches`):
PyPI's torchvision does not load beside the CPU build of torch this project installs, so the
CPU path never touches it. What nvJPEG rejects (progressive or CMYK files on some versions,
non-JPEG bytes) is decoded by the CPU decoder; what that cannot read either is reported.
The pixels differ slightly from the CPU decoder's (another IDCT and resize), which is why
training shards always decode on the CPU (see `shards.samples`); embeddings are a model's
output, already device-dependent under bf16."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg

from platform_assets.lib.images.decode import decode

JPEG_MAGIC = b"\xff\xd8"
PREFETCH_BATCHES = 2  # decoded batches waiting for the model: the overlap, bounded


def _square(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, h, w) uint8 -> (3, size, size) floats in [0, 1]: the centred square, resized with
    antialiasing (as Pillow's reducing resize does on the CPU path)."""
    _, h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[:, top : top + side, left : left + side].unsqueeze(0).float()
    if side != size:
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return crop.squeeze(0).clamp_(0, 255).div_(255)


def _decode_batch(
    items: list[tuple[int, torch.Tensor]], size: int, device: torch.device
) -> tuple[list[int], torch.Tensor, list[str]]:
    """One batch: nvJPEG for everything that looks like a JPEG (one call; per image if the
    batch call refuses one), the CPU decoder for the rest and for what nvJPEG rejects."""
    idx = [i for i, _ in items]
    out: list[torch.Tensor | None] = [None] * len(items)
    errors = [""] * len(items)
    jpegs = [k for k, (_, data) in enumerate(items) if bytes(data[:2].tolist()) == JPEG_MAGIC]
    decoded: dict[int, torch.Tensor] = {}
    if jpegs:
        try:
            images = decode_jpeg([items[k][1] for k in jpegs], mode=ImageReadMode.RGB, device=device)
            decoded = dict(zip(jpegs, images))
        except RuntimeError:
            for k in jpegs:
                try:
                    decoded[k] = decode_jpeg(items[k][1], mode=ImageReadMode.RGB, device=device)
                except RuntimeError:
                    continue
    for k, (_, data) in enumerate(items):
        if k in decoded:
            out[k] = _square(decoded[k], size)
            continue
        try:  # the CPU decoder: what nvJPEG cannot read, and what is not a JPEG at all
            out[k] = decode(data.numpy().tobytes(), size).to(device).float().div_(255)
        except ValueError as exc:
            errors[k] = str(exc)
            out[k] = torch.zeros(3, size, size, device=device)
    return idx, torch.stack(out), errors  # type: ignore[arg-type]


def gpu_batches(
    blobs: list[bytes], size: int, batch_size: int, device: torch.device
) -> Iterator[tuple[list[int], torch.Tensor, list[str]]]:
    """(indices, float images on `device`, errors) in order. The bytes are already in memory, so
    no reader processes: on CUDA a thread decodes one batch ahead on a stream of its own and
    hands each over with an event the model's stream waits on (on a CPU device — torchvision's
    libjpeg, for checking this path without a GPU — in line)."""
    batches = (
        [
            (i, torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8))
            for i in range(s, min(s + batch_size, len(blobs)))
        ]
        for s in range(0, len(blobs), batch_size)
    )
    if device.type != "cuda":
        for items in batches:
            yield _decode_batch(items, size, device)
        return
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)
    stream = torch.cuda.Stream(device)
    stop = threading.Event()

    def produce() -> None:
        try:
            with torch.cuda.stream(stream):
                for items in batches:
                    if stop.is_set():
                        return
                    batch = _decode_batch(items, size, device)
                    event = torch.cuda.Event()
                    event.record(stream)
                    ready.put((batch, event))
            ready.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ready.put(exc)

    thread = threading.Thread(target=produce, name="nvjpeg-decode", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            (idx, images, errors), event = item
            torch.cuda.current_stream(device).wait_event(event)
            images.record_stream(torch.cuda.current_stream(device))  # allocated on the decode stream
            yield idx, images, errors
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                thread.join(0.05)
