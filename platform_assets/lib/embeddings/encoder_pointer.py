"""The image encoder in use: `ENCODER_POINTER` in the lake names its weights and how to read
them. Written by `image_encoder`, read by `image_embeddings`; no torch."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from platform_assets.lib.lake_layout import ENCODER_POINTER
from platform_assets.lib.lake_store import LakeStore


@dataclass(frozen=True)
class EncoderPointer:
    version: str  # the weights' sha256: the encoder's version
    key: str  # the weights' lake key (`encoder_weights_key`)
    arch: str  # resnet-small or resnet18
    image_size: int  # the pixels it reads, a side of the centred square


def write_encoder_pointer(store: LakeStore, pointer: EncoderPointer) -> None:
    store.write_bytes(ENCODER_POINTER, json.dumps(asdict(pointer)).encode())


def read_encoder_pointer(store: LakeStore) -> EncoderPointer:
    fields = json.loads(store.read_bytes(ENCODER_POINTER))
    return EncoderPointer(
        version=fields["version"], key=fields["key"], arch=fields["arch"], image_size=fields["image_size"]
    )
