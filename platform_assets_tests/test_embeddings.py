"""Embeddings on a small generated lake: trained encoder, incremental re-embedding, broken images."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import torch

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder, title_embeddings
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.lib.embeddings.image_encoder import train_simclr
from platform_assets.lib.images.augment import augment, draw_params
from platform_assets.lib.lake_layout import (
    IMAGE_EMBEDDINGS_PATH,
    IMAGE_QUARANTINE_PATH,
    TITLE_EMBEDDINGS_PATH,
    partition_key,
)
from platform_assets.lib.simulator.images import encode_jpeg, render

FAST = {
    "ops": {
        "embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
        "embeddings__image_embeddings": {"config": {"workers": 0}},
    }
}


def materialized(result: dg.ExecuteInProcessResult, name: str) -> dict:
    """The metadata of the run's materialization of `name` (one per day of a range: the same)."""
    mats = [m.materialization for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == name]
    assert mats and all(m.metadata == mats[0].metadata for m in mats)
    return {k: v.value for k, v in mats[0].metadata.items()}


def _every_day(lake, dataset: str) -> pa.Table:
    return pa.concat_tables(lake.store.read_parquet(partition_key(dataset, d)) for d in lake.days)


@pytest.mark.slow
def test_embeddings_are_incremental_by_posting_day_and_broken_images_quarantined(fresh_lake) -> None:
    resources, store = fresh_lake.resources(), fresh_lake.store
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos], resources=resources).success
    assets = [image_encoder, image_embeddings, title_embeddings]
    first = dg.materialize(assets, resources=resources, run_config=FAST, tags=fresh_lake.every_day)
    assert first.success
    n = fresh_lake.manifest["scale"]["photos"]
    assert materialized(first, "image_embeddings")["embedded"] == n
    assert materialized(first, "title_embeddings")["embedded"] == n
    table = _every_day(fresh_lake, IMAGE_EMBEDDINGS_PATH)
    assert table.num_rows == n and table.schema.field("embedding").type.list_size == 256
    vectors = np.stack(table["embedding"].to_numpy(zero_copy_only=False))
    assert np.isfinite(vectors).all() and vectors.std(axis=0).mean() > 0
    photos = store.read_parquet("staging/photos.parquet")
    for day in fresh_lake.days:  # each photo's vector is stored under the day it was posted
        ids = store.read_parquet(partition_key(IMAGE_EMBEDDINGS_PATH, day))["photo_id"].to_pylist()
        posted = {str(p["posted_at"].date()) for p in photos.to_pylist() if p["photo_id"] in set(ids)}
        assert ids and posted == {day}

    first_day, last_day = fresh_lake.days[0], fresh_lake.days[-1]
    in_last = store.read_parquet(partition_key(IMAGE_EMBEDDINGS_PATH, last_day))["photo_id"].to_pylist()
    changed, broken = in_last[0], in_last[1]
    store.write_bytes(f"images/{changed}.jpg", encode_jpeg(render(np.random.default_rng(99), "pet", "vivid")))
    store.write_bytes(f"images/{broken}.jpg", b"\xff\xd8 not really a jpeg")
    untouched = store.read_bytes(partition_key(IMAGE_EMBEDDINGS_PATH, first_day))
    again = dg.materialize(
        [image_embeddings, title_embeddings],
        resources=resources,
        partition_key=last_day,  # a refresh reads and writes only its day
        run_config={"ops": {"embeddings__image_embeddings": {"config": {"workers": 0}}}},
    )
    assert again.success
    meta = materialized(again, "image_embeddings")
    assert (meta["embedded"], meta["quarantined"], meta["reused"]) == (1, 1, len(in_last) - 2)
    assert materialized(again, "title_embeddings")["embedded"] == 0
    assert store.read_bytes(partition_key(IMAGE_EMBEDDINGS_PATH, first_day)) == untouched
    (row,) = store.read_parquet(partition_key(IMAGE_QUARANTINE_PATH, last_day)).to_pylist()
    assert row["photo_id"] == broken and row["image_key"] == f"images/{broken}.jpg"
    assert "not a readable image" in row["reason"]
    after = _every_day(fresh_lake, IMAGE_EMBEDDINGS_PATH)
    assert broken not in after["photo_id"].to_pylist() and after.num_rows == n - 1
    titles = _every_day(fresh_lake, TITLE_EMBEDDINGS_PATH)
    norms = np.linalg.norm(np.stack(titles["embedding"].to_numpy(zero_copy_only=False)), axis=1)
    assert titles.num_rows == n and np.allclose(norms, 1, atol=1e-3)


@pytest.mark.slow
def test_encoder_training_is_deterministic() -> None:
    images = torch.randint(0, 256, (48, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = train_simclr(images, epochs=1, batch_size=16, lr=1e-3, seed=4, device=torch.device("cpu"))
    b = train_simclr(images, epochs=1, batch_size=16, lr=1e-3, seed=4, device=torch.device("cpu"))
    assert a.version == b.version and a.losses == b.losses


def test_augmentation_depends_on_example_and_view_not_on_the_batch() -> None:
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    whole = augment(images, draw_params(7, [10, 11, 12, 13], view=0))
    alone = augment(images[2:3], draw_params(7, [12], view=0))
    assert whole.dtype == torch.uint8 and torch.equal(whole[2:3], alone)
    other_view = augment(images[2:3], draw_params(7, [12], view=1))
    assert not torch.equal(alone, other_view)


def test_resnet18_layout_loads_torchvision_style_weights(tmp_path) -> None:
    """A torchvision resnet18 state_dict (classifier included) loads into the encoder as is."""
    from platform_assets.lib.embeddings.image_encoder import ImageEncoder, load_weights

    state = ImageEncoder("resnet18").state_dict()
    expected = {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.weight",
    }
    assert expected <= set(state)  # torchvision's parameter names
    assert state["conv1.weight"].shape == (64, 3, 7, 7) and state["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    with_fc = {**state, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    torch.save(with_fc, tmp_path / "imagenet.pt")
    arch, loaded = load_weights(str(tmp_path / "imagenet.pt"))
    assert arch == "resnet18" and "fc.weight" not in loaded
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    import pytest

    with pytest.raises(ValueError, match="not the weights of a known image encoder"):
        load_weights(str(tmp_path / "other.pt"))
