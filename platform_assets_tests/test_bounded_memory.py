"""Memory bounded by settings, not by data: a stage run at two sizes must not hold the bigger
day. Python's and numpy's allocations are traced (tracemalloc), so a stage that gathers a
day's pixels or JPEGs before writing shows up as growth proportional to the day."""

import io
import tracemalloc
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from platform_assets.lib.embeddings import refresh as refresh_lib
from platform_assets.lib.embeddings.image_encoder import ImageEncoder
from platform_assets.lib.embeddings.incremental import embedding_table
from platform_assets.lib.embeddings.refresh import (
    encoded_weights,
    encoder_sample,
    refresh_image_embeddings,
    refresh_title_embeddings,
)
from platform_assets.lib.embeddings.titles import TITLE_DIM
from platform_assets.lib.images import batches as images_lib
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards import samples as samples_lib
from platform_assets.lib.shards import vectors as vectors_lib
from platform_assets.lib.shards.samples import TABULAR, VECTORS, Augmentation, sample_schema, write_samples
from platform_assets.lib.shards.selection import Selection, select_rows
from platform_assets.lib.shards.vectors import VectorCursor
from platform_assets.lib.shards.writer import GatheredColumn, write_shards

CPU = torch.device("cpu")
SIZE = 96  # px: 27 KiB of pixels a view, so a day of 1,000 photos is 55 MB of views


def day_of_photos(store: LakeStore, photos: int) -> Selection:
    """`photos` training rows whose images (eight distinct JPEGs, each under many keys) are in `store`."""
    rng = np.random.default_rng(0)
    jpegs = []
    for _ in range(8):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(buf, "JPEG")
        jpegs.append(buf.getvalue())
    keys = [f"images/{i}.jpg" for i in range(photos)]
    for i, key in enumerate(keys):
        store.write_bytes(key, jpegs[i % 8])
    rows = pa.table(
        {
            "photo_id": pa.array(np.arange(photos), pa.int64()),
            "posted_at": pa.array(np.zeros(photos, "datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
            "popularity_score": pa.array(rng.random(photos)),
            "title": pa.array(["a photo of the sea"] * photos),
            "image_key": pa.array(keys),
            **{c: pa.array(rng.random(photos)) for c in TABULAR},
        }
    )
    vectors = rng.random((photos, 8)).astype(np.float32)
    ids = np.arange(photos)
    return Selection(rows, VectorCursor.of_arrays(ids, vectors), VectorCursor.of_arrays(ids, vectors), 0)


def traced_peak(tmp_path, photos: int) -> int:
    store = LakeStore(str(tmp_path / f"lake-{photos}"))
    selected = day_of_photos(store, photos)
    tracemalloc.start()
    try:
        write_samples(
            selected,
            store,
            LakeStore(str(tmp_path / f"out-{photos}")),
            "day",
            Augmentation(2, 0, SIZE),
            device=torch.device("cpu"),
            target_bytes=2**20,
            workers=0,
            batch_size=32,
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_writing_a_days_shards_holds_a_shard_and_a_batch_not_the_day(tmp_path) -> None:
    small, large = traced_peak(tmp_path, 200), traced_peak(tmp_path, 1000)
    views_growth = (1000 - 200) * 2 * 3 * SIZE * SIZE  # 44 MB more pixels in the larger day
    assert large - small < 0.1 * views_growth, (small, large)


ARROW_POOLS: list[pa.MemoryPool] = []


def allocation_peak(run: Callable[[], object]) -> int:
    """The peak of Python's, numpy's and Arrow's allocations while `run` runs."""
    pool = pa.proxy_memory_pool(pa.default_memory_pool())  # Arrow's buffers: tracemalloc does not see them
    ARROW_POOLS.append(pool)  # kept for the session: a buffer allocated from a pool frees through it
    default = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] + pool.max_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(default)


def refresh_peak(tmp_path, kind: str, photos: int) -> int:
    """The peak of Python's and Arrow's allocations while a day of `photos` photos has its
    embeddings written, the model warm."""
    store = LakeStore(str(tmp_path / f"{kind}-{photos}"))
    if kind == "images":
        day = day_of_photos(store, photos).rows.select(["photo_id", "image_key"])
        weights = encoded_weights(ImageEncoder("resnet18").state_dict(), {})  # 512 floats a photo

        def refresh(table: pa.Table, key: str) -> None:
            refresh_image_embeddings(
                store,
                table,
                key,
                weights=weights.weights,
                version=weights.version,
                arch="resnet18",
                size=32,
                device=CPU,
                batch_size=16,
                workers=0,
            )
    else:
        day = pa.table(
            {"photo_id": pa.array(range(photos), pa.int64()), "title": [f"photo {i} of the sea" for i in range(photos)]}
        )

        def refresh(table: pa.Table, key: str) -> None:
            refresh_title_embeddings(store, table, key, "v1", CPU, 16)

    refresh(day.slice(0, 4), "warm.parquet")
    return allocation_peak(lambda: refresh(day, "day.parquet"))


@pytest.mark.parametrize("kind", ["images", "titles"])
def test_a_days_embeddings_are_written_a_slice_at_a_time_not_held(tmp_path, monkeypatch, kind: str) -> None:
    for module, name in [(refresh_lib, "TITLE_SLICE_ROWS"), (refresh_lib, "EMBEDDINGS_ROW_GROUP_ROWS")]:
        monkeypatch.setattr(module, name, 32)
    # The lower of two peaks: tracemalloc counts every thread's allocations, and a thread left by
    # an earlier test in this process (an S3 client's, a server's) only ever adds to a peak.
    small, large = refresh_peak(tmp_path, kind, 100), min(refresh_peak(tmp_path, kind, 1000) for _ in range(2))
    # The larger day's vectors held once would add 900 photos' worth (2 KB a photo for images,
    # 1.5 KB for titles; the code before this test held two to four copies). What may grow is
    # each photo's key and known hash (about 0.5 KB), and a batch's transient objects, whose
    # peak varies by a few hundred KB from run to run.
    vectors_growth = (1000 - 100) * 4 * (512 if kind == "images" else TITLE_DIM)
    assert large - small < 0.75 * vectors_growth, (small, large, vectors_growth)


def vectors_peak(tmp_path, monkeypatch, photos: int) -> int:
    """The allocation peak of writing a day's two vector columns (2 views a photo) into shards,
    from the day's embeddings tables in the lake, as `training_shards` reads them."""
    monkeypatch.setattr(vectors_lib, "EMBEDDINGS_ROW_GROUP_ROWS", 512)
    store = LakeStore(str(tmp_path / f"vectors-{photos}"))
    ids = pa.array(np.arange(photos), pa.int64())
    for key, dim in (("image.parquet", 128), ("title.parquet", 96)):
        vectors = np.random.default_rng(dim).random((photos, dim), np.float32)
        store.write_parquet(key, embedding_table(ids, pa.array(["h"] * photos), "v", vectors), 512)
    rows = pa.table({"photo_id": ids, "title": pa.array(["t"] * photos), "image_key": pa.array(["k"] * photos)})
    samples = pa.table({"photo_id": pa.array(np.repeat(np.arange(photos), 2)), "view": pa.array([0, 1] * photos)})

    def write() -> None:
        selected = select_rows(
            rows.select(["photo_id"]),
            rows,
            *(VectorCursor.in_lake(store, k) for k in ("image.parquet", "title.parquet")),
        )
        schema = sample_schema(8, selected.image_vectors.dim, selected.title_vectors.dim)
        gathered = [
            GatheredColumn(schema.field(name), 2 + i, selected.rows["photo_id"].to_numpy(), cursor, 2)  # after `view`
            for i, (name, cursor) in enumerate(zip(VECTORS, (selected.image_vectors, selected.title_vectors)))
        ]
        write_shards(LakeStore(str(tmp_path / f"shards-{photos}")), "day", samples, 2**18, gathered=gathered)

    return allocation_peak(write)


def test_shards_read_a_days_vectors_a_row_group_at_a_time(tmp_path, monkeypatch) -> None:
    small, large = vectors_peak(tmp_path, monkeypatch, 1000), vectors_peak(tmp_path, monkeypatch, 8000)
    one_copy = (8000 - 1000) * 4 * (128 + 96)  # the larger day's vectors, held once: 6.3 MB more
    assert large - small < 0.25 * one_copy, (small, large, one_copy)


def test_the_encoder_trains_on_a_bounded_sample_that_is_stable_as_the_lake_grows() -> None:
    def photos(n: int) -> pa.Table:
        return pa.table({"photo_id": pa.array(np.arange(n) * 3, pa.int64()), "image_key": [f"k{i}" for i in range(n)]})

    one_image = 3 * 64 * 64
    everything = photos(500)
    assert encoder_sample(everything, 500 * one_image, 64, seed=0) is everything  # all fit: the whole lake, as before
    sample = encoder_sample(everything, 100 * one_image, 64, seed=0)
    ids = sample["photo_id"].to_pylist()
    assert len(ids) == 100 and ids == sorted(ids)  # at most the budget, in the photos' order
    assert encoder_sample(everything, 100 * one_image, 64, seed=0).equals(sample)  # the same on every run
    assert encoder_sample(everything, 100 * one_image, 64, seed=1)["photo_id"].to_pylist() != ids
    grown = encoder_sample(photos(550), 100 * one_image, 64, seed=0)["photo_id"].to_pylist()
    assert len(set(grown) & set(ids)) >= 85  # 10 % more photos replace about 10 % of the sample
    with pytest.raises(ValueError, match="set image_encoder's sample_mb to 1 or more"):
        encoder_sample(everything, one_image, 64, seed=0)


@pytest.mark.slow
def test_decode_workers_read_an_s3_lake_batch_by_batch_and_write_the_local_bytes(tmp_path, monkeypatch) -> None:
    """Workers that read from S3 themselves (started clean: the S3 client is not fork-safe) give
    the bytes of the in-line path on a local lake."""
    from platform_assets_tests.support.s3_server import make_bucket, s3_server

    batches: list[tuple[int, int]] = []  # (first photo, photos) of each batch write_samples is handed
    loaders: list[dict] = []  # the worker settings of each DataLoader the reader starts
    stored_image_batches, data_loader = samples_lib.stored_image_batches, images_lib.DataLoader

    def counted(*args, **kwargs):
        for batch in stored_image_batches(*args, **kwargs):
            batches.append((batch.start, len(batch.hashes)))
            yield batch

    def loader(dataset, **kwargs):
        loaders.append(kwargs)
        return data_loader(dataset, **kwargs)

    monkeypatch.setattr(samples_lib, "stored_image_batches", counted)
    monkeypatch.setattr(images_lib, "DataLoader", loader)

    def shards(lake: LakeStore, workers: int, name: str) -> dict[str, str]:
        batches.clear()
        loaders.clear()
        out = LakeStore(str(tmp_path / name))
        written = write_samples(
            day_of_photos(local, 40), lake, out, "day", Augmentation(2, 0, 32), device=torch.device("cpu"),
            target_bytes=50_000, workers=workers, batch_size=8,
        )  # fmt: skip
        assert batches == [(start, 8) for start in range(0, 40, 8)]  # 40 photos, 8 at a time, in order
        return {s.name: s.sha256 for s in written}

    local = LakeStore(str(tmp_path / "local"))
    selected = day_of_photos(local, 40)
    with s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        s3 = LakeStore("s3://lake/root", s3_endpoint_url=endpoint)
        for key in selected.rows["image_key"].to_pylist():
            s3.write_bytes(key, local.read_bytes(key))
        from_s3 = shards(s3, 2, "from-s3")
        # batches after the first (read in line) come from two worker processes started clean
        assert [(c["num_workers"], c.get("multiprocessing_context")) for c in loaders] == [(2, "forkserver")]
        assert from_s3 == shards(local, 0, "from-local")
