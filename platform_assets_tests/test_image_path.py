"""The image path at real photo sizes: the image-size setting, photo-sized simulator JPEGs, the
CPU decoder (centred square, DCT-domain draft), and augmentation bytes that do not depend on
batch size, thread count or worker count (the GPU half of that claim is benchmarks/gpu_check.py)."""

import io
import re
import subprocess
import tomllib

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from packaging.requirements import Requirement
from PIL import Image

from platform_assets.defs.embeddings.assets import image_embeddings, image_encoder
from platform_assets.defs.lake.raw_db import raw_photos, raw_users
from platform_assets.defs.resources import ImagesResource, images_resource
from platform_assets.defs.staging.app_tables import stage_photos, stage_users
from platform_assets.lib.embeddings.encoder_pointer import read_encoder_pointer
from platform_assets.lib.images.augment import augment, draw_params
from platform_assets.lib.images.decode import decode
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.samples import TABULAR, Augmentation, write_samples
from platform_assets.lib.shards.selection import Selection
from platform_assets.lib.shards.vectors import VectorCursor
from platform_assets.lib.simulator import LakeScale
from platform_assets.lib.simulator.images import CLASSES, encode_jpeg, render
from platform_assets_tests.support.augment_oracle import float_reference
from platform_assets_tests.support.helpers import ROOT, make_lake

CPU = torch.device("cpu")


def photo(seed: int, width: int = 640, height: int = 480, cls: str = "pet") -> bytes:
    return encode_jpeg(render(np.random.default_rng(seed), cls, "vivid", width, height))


def test_augmentation_bytes_do_not_depend_on_batch_size_or_thread_count() -> None:
    images = torch.stack([decode(photo(i, cls=c), 224) for i, c in enumerate(["pet", "city", "beach"] * 4)])
    params = draw_params(5, list(range(len(images))), view=1)
    whole = augment(images, params)
    assert whole.dtype == torch.uint8 and whole.shape == images.shape
    for batch in (1, 5):
        parts = [augment(images[s : s + batch], params[s : s + batch]) for s in range(0, len(images), batch)]
        assert torch.equal(torch.cat(parts), whole)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(augment(images, params), whole)
    finally:
        torch.set_num_threads(threads)
    assert not torch.equal(augment(images, draw_params(5, list(range(len(images))), view=0)), whole)


def test_integer_augmentation_stays_within_two_levels_of_the_float_one() -> None:
    images = torch.stack([decode(photo(i, 64, 64, CLASSES[i % 6]), 64) for i in range(60)])
    params = draw_params(3, list(range(60)), view=0)
    diff = (augment(images, params).int() - float_reference(images, params).int()).abs()
    assert diff.max() <= 2 and diff.float().mean() < 0.1, (diff.max(), diff.float().mean())


def test_decode_reads_the_centred_square_with_a_dct_draft() -> None:
    data = photo(1)
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (640, 480) and img.format == "JPEG"
    small = decode(data, 224)
    assert small.shape == (3, 224, 224) and small.dtype == torch.uint8
    with Image.open(io.BytesIO(data)) as img:  # the full decode, cropped and resized: what draft saves work on
        full = img.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR, box=(80, 0, 560, 480))
    reference = torch.from_numpy(np.array(full)).permute(2, 0, 1)
    assert (small.int() - reference.int()).abs().float().mean() < 3
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (224, 224))
        assert img.size == (320, 240)  # libjpeg decoded at 1/2 scale: a quarter of the pixels
    with pytest.raises(ValueError, match="not a readable image"):
        decode(b"\xff\xd8 truncated", 224)


def test_the_simulator_writes_photo_sized_jpegs_on_request() -> None:
    sizes = []
    for i in range(6):
        data = photo(i, cls=CLASSES[i])
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (640, 480)
        sizes.append(len(data))
    assert 20_000 < np.median(sizes) < 120_000, sizes  # tens of KB, like real photos
    default = render(np.random.default_rng(0), "pet", "vivid")
    assert default.shape == (64, 64, 3)  # the demo's images are unchanged by the option


def test_image_size_comes_from_the_environment_and_a_bad_value_names_the_setting(monkeypatch) -> None:
    monkeypatch.delenv("PLATFORM_ASSETS_IMAGE_SIZE", raising=False)
    monkeypatch.delenv("PLATFORM_ASSETS_DEPLOYMENT", raising=False)
    assert images_resource().size == 64
    monkeypatch.setenv("PLATFORM_ASSETS_DEPLOYMENT", "production")
    assert images_resource().size == 224
    monkeypatch.setenv("PLATFORM_ASSETS_IMAGE_SIZE", "96")
    assert images_resource().size == 96
    monkeypatch.setenv("PLATFORM_ASSETS_IMAGE_SIZE", "224px")
    with pytest.raises(ValueError, match=r"PLATFORM_ASSETS_IMAGE_SIZE='224px': set a whole number"):
        images_resource()
    monkeypatch.setenv("PLATFORM_ASSETS_IMAGE_SIZE", "8")
    with pytest.raises(Exception, match="greater than or equal to 16"):
        images_resource()


def test_the_gpu_install_keeps_an_installed_cuda_torch() -> None:
    """`make KEEP_TORCH=1`: the environment sees the Python's own packages, the constraints have
    no torch pin, and pyproject's range admits the CUDA builds in use."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_req,) = [Requirement(d) for d in deps if Requirement(d).name == "torch"]
    for build in ("2.11.0+cu130", "2.12.1+cu128", "2.13.0", "2.14.1+cu130"):
        assert torch_req.specifier.contains(build), build
    lock = (ROOT / "requirements.lock").read_text()
    assert torch_req.specifier.contains(re.search(r"^torch==(\S+)$", lock, re.M).group(1))
    plan = subprocess.run(
        ["make", "-n", "-B", "KEEP_TORCH=1", ".venv/.installed-dev"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "venv --clear --system-site-packages .venv" in plan
    assert "grep -v '^torch==' requirements.lock > .venv/constraints.txt" in plan
    assert plan.count("-c .venv/constraints.txt") == 2 and "-c requirements.lock" not in plan
    default = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "--system-site-packages" not in default and "-c requirements.lock -e ." in default


@pytest.mark.slow
def test_one_image_size_setting_drives_the_encoder_the_embeddings_and_the_shards(tmp_path) -> None:
    scale = LakeScale(users=20, photos=40, days=1, events_per_day=300, image_width=320, image_height=240, seed=3)
    lake = make_lake(tmp_path, scale)
    resources = {**lake.resources(), "images": ImagesResource(size=48)}
    run_config = {"ops": {"embeddings__image_encoder": {"config": {"epochs": 1, "batch_size": 32}}}}
    assert dg.materialize([raw_users, raw_photos, stage_users, stage_photos], resources=resources).success
    result = dg.materialize(
        [image_encoder, image_embeddings], resources=resources, run_config=run_config, tags=lake.every_day
    )
    assert result.success
    meta = {
        m.asset_key.path[-1]: {k: v.value for k, v in m.materialization.metadata.items()}
        for m in result.get_asset_materialization_events()
    }
    assert meta["image_encoder"]["image_size"] == 48 and meta["image_encoder"]["device"] == "cpu"
    assert meta["image_embeddings"]["image_size"] == 48 and meta["image_embeddings"]["decoder"] == "pillow"
    assert meta["image_embeddings"]["embedded"] == 40
    assert read_encoder_pointer(lake.store).image_size == 48

    rows = pa.table(
        {
            "photo_id": pa.array(range(1, 13), pa.int64()),
            "posted_at": pa.array([0] * 12, pa.timestamp("us", tz="UTC")),
            "popularity_score": pa.array(np.linspace(0, 1, 12), pa.float64()),
            "title": ["a photo"] * 12,
            "image_key": [f"images/{i}.jpg" for i in range(1, 13)],
            **{c: pa.array(np.arange(12, dtype=np.float64)) for c in TABULAR},
        }
    )
    vectors = np.arange(48, dtype=np.float32).reshape(12, 4)  # read forward as shards are cut

    def selected() -> Selection:
        ids = np.arange(1, 13)
        return Selection(rows, VectorCursor.of_arrays(ids, vectors), VectorCursor.of_arrays(ids, vectors[:, :2]), 0)

    def shards(workers: int, batch_size: int) -> tuple[pa.Table, dict[str, bytes]]:
        out = LakeStore(str(tmp_path / f"shards-{workers}-{batch_size}"))
        written = write_samples(
            selected(),
            lake.store,
            out,
            "day",
            Augmentation(2, 0, 48),
            device=CPU,
            target_bytes=40_000,  # several shards: the streamed pixels cross shard boundaries
            workers=workers,
            batch_size=batch_size,
        )
        files = {s.name: out.read_bytes(f"day/{s.name}") for s in written}
        return pa.concat_tables(pq.read_table(out.path(f"day/{s.name}")) for s in written), files

    inline, inline_files = shards(0, 256)
    assert inline.schema.field("image").type.byte_width == 3 * 48 * 48 and inline.num_rows == 24
    assert len(inline_files) > 2 and inline["photo_id"].to_pylist() == [i for i in range(1, 13) for _ in range(2)]
    assert inline["image_embedding"].to_pylist() == np.repeat(vectors, 2, axis=0).tolist()  # across shard cuts
    assert inline["title_embedding"].to_pylist() == np.repeat(vectors[:, :2], 2, axis=0).tolist()
    assert shards(2, 5)[1] == inline_files  # decode workers and batch composition change no byte
