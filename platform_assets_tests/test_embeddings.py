"""Embeddings on a small generated lake: trained encoder, incremental re-embedding, broken images."""

import dagster as dg
import numpy as np
import pytest
import torch

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder, title_embeddings
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.lib.embeddings.augment import augment, draw_params
from platform_assets.lib.embeddings.image_encoder import train_simclr
from platform_assets.lib.lake_layout import IMAGE_EMBEDDINGS_FILE, IMAGE_QUARANTINE_FILE, TITLE_EMBEDDINGS_FILE
from platform_assets.lib.simulator.images import encode_jpeg, render

FAST = {
    "ops": {
        "embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 64}},
        "embeddings__image_embeddings": {"config": {"workers": 0}},
    }
}


def materialized(result: dg.ExecuteInProcessResult, name: str) -> dict:
    (mat,) = [m.materialization for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == name]
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.mark.slow
def test_embeddings_are_incremental_and_broken_images_quarantined(fresh_lake) -> None:
    resources = fresh_lake.resources()
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos], resources=resources).success
    assets = [image_encoder, image_embeddings, title_embeddings]
    first = dg.materialize(assets, resources=resources, run_config=FAST)
    assert first.success
    n = fresh_lake.manifest["scale"]["photos"]
    assert materialized(first, "image_embeddings")["embedded"] == n
    assert materialized(first, "title_embeddings")["embedded"] == n
    table = fresh_lake.store.read_parquet(IMAGE_EMBEDDINGS_FILE)
    assert table.num_rows == n and table.schema.field("embedding").type.list_size == 256
    vectors = np.stack(table["embedding"].to_numpy(zero_copy_only=False))
    assert np.isfinite(vectors).all() and vectors.std(axis=0).mean() > 0

    store = fresh_lake.store
    store.write_bytes("images/3.jpg", encode_jpeg(render(np.random.default_rng(99), "pet", "vivid")))  # changed
    store.write_bytes("images/5.jpg", b"\xff\xd8 not really a jpeg")  # broken
    again = dg.materialize(
        [image_embeddings, title_embeddings],
        resources=resources,
        run_config={"ops": {"embeddings__image_embeddings": {"config": {"workers": 0}}}},
    )
    assert again.success
    meta = materialized(again, "image_embeddings")
    assert (meta["embedded"], meta["quarantined"], meta["reused"]) == (1, 1, n - 2)
    assert materialized(again, "title_embeddings")["embedded"] == 0
    (row,) = store.read_parquet(IMAGE_QUARANTINE_FILE).to_pylist()
    assert row["photo_id"] == 5 and row["image_key"] == "images/5.jpg" and "not a readable image" in row["reason"]
    after = store.read_parquet(IMAGE_EMBEDDINGS_FILE)
    assert 5 not in after["photo_id"].to_pylist() and after.num_rows == n - 1
    titles = store.read_parquet(TITLE_EMBEDDINGS_FILE)
    norms = np.linalg.norm(np.stack(titles["embedding"].to_numpy(zero_copy_only=False)), axis=1)
    assert np.allclose(norms, 1, atol=1e-3)


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
