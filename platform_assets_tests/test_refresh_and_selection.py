"""The embeddings' bookkeeping and the shards' row selection, without Dagster: what is
recomputed, reused and quarantined; which rows become samples, with aligned vectors."""

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from platform_assets.lib.embeddings import incremental
from platform_assets.lib.embeddings import refresh as refresh_lib
from platform_assets.lib.embeddings.image_encoder import ImageEncoder
from platform_assets.lib.embeddings.incremental import embedding_table
from platform_assets.lib.embeddings.refresh import (
    Refresh,
    encoded_weights,
    refresh_image_embeddings,
    refresh_title_embeddings,
)
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.selection import select_rows
from platform_assets.lib.shards.vectors import VectorCursor
from platform_assets.lib.simulator.images import encode_jpeg, render

CPU = torch.device("cpu")


def _photos(ids: list[int]) -> pa.Table:
    return pa.table({"photo_id": pa.array(ids, pa.int64()), "image_key": [f"images/{i}.jpg" for i in ids]})


def test_only_new_or_changed_images_are_embedded_and_broken_ones_quarantined(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder()
    nn.init.normal_(encoder.conv1.weight)
    weights = encoded_weights(encoder.state_dict(), {})
    rng = np.random.default_rng(0)
    blobs = [encode_jpeg(render(rng, "beach", "plain")) for _ in range(4)]
    store = LakeStore(str(tmp_path))
    reads = []
    read_many = LakeStore.read_many
    monkeypatch.setattr(LakeStore, "read_many", lambda self, keys: reads.append(list(keys)) or read_many(self, keys))

    def refresh(ids: list[int], images: list[bytes]) -> tuple[Refresh, pa.Table]:
        for i, data in zip(ids, images):
            store.write_bytes(f"images/{i}.jpg", data)
        reads.clear()
        result = refresh_image_embeddings(
            store,
            _photos(ids),
            "day.parquet",
            weights=weights.weights,
            version=weights.version,
            arch="resnet-small",
            size=64,
            device=CPU,
            batch_size=2,
            workers=0,
        )
        return result, store.read_parquet("day.parquet")

    first, first_table = refresh([1, 2, 3], blobs[:3])
    assert (first.embedded, first.reused, first.quarantine.num_rows, first.rows) == (3, 0, 0, 3)
    # 2 changed, 3 broken, 4 new; 1 unchanged is reused with its vector. Each image is read
    # once, two at a time (the batch size).
    second, second_table = refresh([4, 1, 3, 2], [blobs[1], blobs[0], b"not a jpeg", blobs[3]])
    assert reads == [["images/1.jpg", "images/2.jpg"], ["images/3.jpg", "images/4.jpg"]]
    assert (second.embedded, second.reused) == (2, 1)
    assert second.quarantine.to_pylist() == [
        {"photo_id": 3, "image_key": "images/3.jpg", "reason": second.quarantine["reason"][0].as_py()}
    ]
    assert second.quarantine["reason"][0].as_py().startswith("not a readable image")
    assert second_table["photo_id"].to_pylist() == [1, 2, 4]
    vectors = {r["photo_id"]: r["embedding"] for r in second_table.to_pylist()}
    assert vectors[1] == first_table.to_pylist()[0]["embedding"]
    # Photo 4 holds photo 2's old image: the same vector up to float rounding (another batch).
    assert np.allclose(vectors[4], first_table.to_pylist()[1]["embedding"], atol=1e-5)
    assert not np.allclose(vectors[2], vectors[4], atol=1e-3)
    again, again_table = refresh([1, 2, 3, 4], [blobs[0], blobs[3], b"not a jpeg", blobs[1]])  # nothing changed
    assert (again.embedded, again.reused) == (0, 3) and again_table.equals(second_table)
    assert again.quarantine.num_rows == 1  # the broken image is reported again


def test_a_day_rewritten_in_slices_reuses_rows_across_slice_boundaries(tmp_path, monkeypatch) -> None:
    """Titles embedded a few photos at a time, with the previous table read a few rows at a
    time: every unchanged row is reused with its vector, wherever the slices cut."""
    monkeypatch.setattr(refresh_lib, "TITLE_SLICE_ROWS", 3)
    monkeypatch.setattr(incremental, "PREVIOUS_BATCH_ROWS", 2)
    store = LakeStore(str(tmp_path))
    titles = {i: f"photo number {i}" for i in range(0, 40, 3)}

    def refresh(titles: dict[int, str]) -> tuple[Refresh, pa.Table]:
        photos = pa.table({"photo_id": pa.array(list(titles), pa.int64()), "title": list(titles.values())})
        result = refresh_title_embeddings(store, photos, "titles.parquet", "v1", CPU, 4)
        return result, store.read_parquet("titles.parquet")

    first, before = refresh(titles)
    assert (first.embedded, first.reused, first.rows) == (len(titles), 0, len(titles))
    changed = {i: t for i, t in titles.items() if i not in (9, 30)} | {9: "a new title", 31: "new photo"}
    second, after = refresh(dict(sorted(changed.items(), reverse=True)))  # any order in, id order out
    assert (second.embedded, second.reused) == (2, len(titles) - 2)  # 9 changed, 30 gone
    assert after["photo_id"].to_pylist() == sorted(changed)
    old = {r["photo_id"]: r["embedding"] for r in before.to_pylist()}
    new = {r["photo_id"]: r["embedding"] for r in after.to_pylist()}
    assert all(new[i] == old[i] for i in changed if i not in (9, 31))
    assert new[9] != old[9] and 30 not in new


def test_rows_without_both_embeddings_are_counted_and_vectors_align_with_rows() -> None:
    rows = pa.table({"photo_id": pa.array([5, 3, 9, 7], pa.int64()), "label": [0.5, 0.3, 0.9, 0.7]})
    photos = pa.table(
        {
            "photo_id": pa.array([3, 5, 7, 9], pa.int64()),
            "title": ["c", "e", "g", "i"],
            "image_key": ["k3", "k5", "k7", "k9"],
        }
    )

    def emb(ids: list[int], dim: int) -> pa.Table:
        vectors = np.array([[i] * dim for i in ids], np.float32)
        return embedding_table(pa.array(ids, pa.int64()), pa.array(["h"] * len(ids)), "v", vectors)

    selected = select_rows(
        rows, photos, VectorCursor.of_table(emb([9, 3, 5], 2)), VectorCursor.of_table(emb([3, 5, 7, 9], 3))
    )
    assert selected.rows["photo_id"].to_pylist() == [3, 5, 9]  # 7 has no image embedding
    assert selected.rows["title"].to_pylist() == ["c", "e", "i"]
    assert selected.without_embeddings == 1
    ids = selected.rows["photo_id"].to_numpy()
    assert selected.image_vectors.take(ids)[:, 0].tolist() == [3, 5, 9]
    title = selected.title_vectors.take(ids)
    assert title.shape == (3, 3) and title[:, 0].tolist() == [3, 5, 9]


def test_vectors_are_read_forward_across_batches_and_shared_photos(tmp_path) -> None:
    """Shards take their vectors in id order, a few photos at a time; consecutive shards may
    share a photo (its two views straddle the cut); a table not in id order is sorted first."""
    ids = np.array([2, 4, 6, 8, 10, 12, 14], np.int64)
    vectors = np.stack([ids, -ids], axis=1).astype(np.float32)
    table = VectorCursor.of_arrays(ids, vectors)
    streamed = VectorCursor(table.ids, 2, pa.table({"photo_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(-1)), 2)}).to_batches(max_chunksize=2))  # fmt: skip
    for cursor in (table, streamed):
        assert cursor.take(np.array([2, 6]))[:, 0].tolist() == [2, 6]
        assert cursor.take(np.array([6, 8, 12]))[:, 1].tolist() == [-6, -8, -12]  # 6 again: shared
        assert cursor.take(np.array([], np.int64)).shape == (0, 2)
        with pytest.raises(ValueError, match=r"no vector for photo ids \[13\]"):
            cursor.take(np.array([12, 13]))

    store = LakeStore(str(tmp_path / "lake"))
    shuffled = [3, 0, 6, 1, 5, 2, 4]
    store.write_parquet(
        "day.parquet", embedding_table(pa.array(ids[shuffled]), pa.array(["h"] * 7), "v", vectors[shuffled])
    )
    in_lake = VectorCursor.in_lake(store, "day.parquet")
    assert in_lake.ids.to_pylist() == ids.tolist() and in_lake.take(ids)[:, 0].tolist() == ids.tolist()
