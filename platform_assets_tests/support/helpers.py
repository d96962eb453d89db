"""Helpers the tests share: small generated lakes, the resources that point at them, running a
command as a user types it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from platform_assets.defs.partitions import range_tags
from platform_assets.defs.resources import AppDatabaseResource, ImagesResource, LakeResource, WorkspaceResource
from platform_assets.lib.images.sizes import DEFAULT_IMAGE_SIZE
from platform_assets.lib.lake_layout import day_range
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, generate_lake
from platform_assets.lib.staging.events import EVENTS_SCHEMA, EventStats, transform_events
from platform_assets.lib.staging.log_lines import read_log_lines

ROOT = Path(__file__).resolve().parents[2]  # the repository


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """`env` in `os.environ` while open; the values before it restored after."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


SMALL = LakeScale(users=60, photos=150, days=2, events_per_day=4000, files_per_hour=2, defect_rate=0.01, seed=11)


@dataclass
class Lake:
    store: LakeStore
    app_db_url: str
    manifest: dict

    def resources(self) -> dict:
        return {
            "lake": LakeResource(root=self.store.root, s3_endpoint_url=self.store.s3_endpoint_url),
            "app_db": AppDatabaseResource(url=self.app_db_url),
            "images": ImagesResource(size=DEFAULT_IMAGE_SIZE),
        }

    @property
    def days(self) -> list[str]:
        """The days the lake's photos and logs cover."""
        return scale_days(LakeScale(**self.manifest["scale"]))

    @property
    def every_day(self) -> dict[str, str]:
        """The tags of one run over all of the lake's days."""
        return range_tags(self.days[0], self.days[-1])


def debian_command(command: str, package: str) -> str:
    """The path of `command`, Debian's `package` installed on first use (the tests install what
    they need); one install at a time across the suite's workers."""
    from filelock import FileLock

    with FileLock(os.path.join(tempfile.gettempdir(), "platform-assets-apt.lock")):
        if not shutil.which(command):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, capture_output=True, env=env)
    path = shutil.which(command)
    assert path, f"{command} (Debian's {package}) could not be installed"
    return path


def scale_days(scale: LakeScale) -> list[str]:
    """The days a generated lake covers."""
    first = date.fromisoformat(scale.start_date)
    return day_range(first, first + timedelta(days=scale.days - 1))


def make_lake(root: Path, scale: LakeScale = SMALL) -> Lake:
    root.mkdir(parents=True, exist_ok=True)
    store = LakeStore(str(root / "lake"))
    (root / "lake").mkdir(exist_ok=True)
    url = f"sqlite:///{root / 'app.db'}"
    return Lake(store, url, generate_lake(store, url, scale))


@dataclass
class TransformedDay:
    """What `transform_events` made of one day, its streamed events gathered into one table."""

    events: pa.Table
    quarantine: pa.Table
    stats: EventStats
    unexpected_fields: dict[str, int]


def transform_day(store: LakeStore, keys: list[str], day: date) -> TransformedDay:
    with transform_events(read_log_lines(store, keys), day) as result:
        events = pa.Table.from_batches([b for t in result.events for b in t.to_batches()], EVENTS_SCHEMA)
    return TransformedDay(events, result.quarantine, result.stats, result.unexpected_fields)


def files_under(root: Path) -> dict[str, str]:
    """sha256 of every visible file (temporary files are hidden: readers and DVC skip them)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def read_manifest(store: LakeStore) -> dict:
    return json.loads(store.read_bytes("_simulator/manifest.json"))


def registry_resource(root: Path, **settings) -> WorkspaceResource:
    """A data registry (created on first pin) in `root/registry`, pushing to a directory remote."""
    return WorkspaceResource(root=str(root / "registry"), dvc_remote=str(root / "dvc-remote"), **settings)


def run_cli(cwd: Path, *cmd: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """A command as a user types it (git, .venv/bin/dvc, platform-assets), its output captured;
    `env` adds to the environment."""
    done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and done.returncode:
        raise AssertionError(f"{cmd} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done


def synthetic_shards(root: Path, days: int = 2, n: int = 301, target_bytes: int = 2**20) -> list[Path]:
    """Days of small synthetic training shards in the reader's and writer's real format, with a
    learnable label; photo ids are unique across days (day × 100,000 + row)."""
    import numpy as np

    from platform_assets.lib.shards.samples import TABULAR, sample_schema
    from platform_assets.lib.shards.writer import write_shards

    def fixed(a: np.ndarray) -> pa.FixedSizeListArray:
        return pa.FixedSizeListArray.from_arrays(pa.array(a.astype(np.float32).reshape(-1)), a.shape[1])

    rng, store, dirs = np.random.default_rng(0), LakeStore(str(root)), []
    schema = sample_schema(DEFAULT_IMAGE_SIZE, 32, 16)
    pixels = schema.field("image").type
    for day in range(days):
        image, title = rng.normal(size=(n, 32)), rng.normal(size=(n, 16))
        features = rng.gamma(2.0, 3.0, size=(n, len(TABULAR)))
        mask = (rng.random(features.shape) > 0.1).astype(np.float32)
        label = image[:, 0] + title[:, 1] + np.log1p(features[:, 0]) + rng.normal(size=n)
        table = pa.table(
            [
                pa.array(day * 100_000 + np.arange(n, dtype=np.int64)),
                pa.array(np.zeros(n, np.int16)),
                pa.array(np.zeros(n, "datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
                pa.array(label.astype(np.float32)),
                pa.array([rng.bytes(pixels.byte_width) for _ in range(n)], pixels),
                fixed(image),
                fixed(title),
                pa.array(["t"] * n),
                fixed(features * mask),
                fixed(mask),
            ],
            schema=schema,
        )
        write_shards(store, f"day{day}", table, target_bytes)
        dirs.append(root / f"day{day}")
    return dirs
