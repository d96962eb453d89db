"""Bad images in the object store: zero bytes, text, a cut-off JPEG, a missing object and a
valid image in another format. Each bad one is quarantined with its reason and key; every
readable image is embedded; the run succeeds."""

import io

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.lib.lake_layout import IMAGE_EMBEDDINGS_PATH, IMAGE_QUARANTINE_PATH, partition_key
from platform_assets_tests.test_embeddings import FAST


@pytest.mark.slow
def test_bad_images_are_quarantined_with_their_reason_and_the_rest_embedded(fresh_lake) -> None:
    store, resources = fresh_lake.store, fresh_lake.resources()
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos], resources=resources).success
    png = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(png, format="PNG")
    jpeg = store.read_bytes("images/4.jpg")
    bad = {
        1: b"",  # zero bytes
        2: b"<html>not an image</html>",
        3: jpeg[: len(jpeg) // 3],  # cut off mid-stream
    }
    for photo_id, data in bad.items():
        store.write_bytes(f"images/{photo_id}.jpg", data)
    store.delete("images/5.jpg")  # the object is missing altogether
    store.write_bytes("images/6.jpg", png.getvalue())  # readable, just not a JPEG

    def _every_day(dataset: str):
        return pa.concat_tables(store.read_parquet(partition_key(dataset, d)) for d in fresh_lake.days)

    result = dg.materialize(
        [image_encoder, image_embeddings], resources=resources, run_config=FAST, tags=fresh_lake.every_day
    )
    assert result.success
    quarantine = {r["photo_id"]: r for r in _every_day(IMAGE_QUARANTINE_PATH).to_pylist()}
    assert set(quarantine) == {1, 2, 3, 5}
    assert all(r["reason"] and r["image_key"] == f"images/{pid}.jpg" for pid, r in quarantine.items())
    embedded = set(_every_day(IMAGE_EMBEDDINGS_PATH)["photo_id"].to_pylist())
    assert 6 in embedded and len(embedded) == fresh_lake.manifest["scale"]["photos"] - 4
