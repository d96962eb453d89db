"""Write a whole seeded lake, or append the next hour of logs to one (for sensor demos)."""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from multiprocessing import get_context

import numpy as np
import polars as pl

from platform_assets.lib.lake_layout import GROUND_TRUTH_FILE
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import logs
from platform_assets.lib.simulator.app_db import write_app_db
from platform_assets.lib.simulator.images import encode_jpeg, render
from platform_assets.lib.simulator.world import build_world

MANIFEST_KEY = "_simulator/manifest.json"
ACTIVITY_KEY = "_simulator/user_activity.parquet"
IMAGE_CHUNK = 2_000  # photos a worker renders per task


@dataclass(frozen=True)
class LakeScale:
    """How big a lake to simulate. The defaults are the demo scale."""

    users: int = 400
    photos: int = 1500
    days: int = 3
    events_per_day: int = 40_000
    files_per_hour: int = 2
    defect_rate: float = 0.002
    start_date: str = "2026-11-01"
    seed: int = 7
    image_width: int = 64  # 640 x 480 for photo-sized JPEGs (tens of KB: real decode work)
    image_height: int = 64


def _epoch_ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def _write_images(store: LakeStore, photos: pl.DataFrame, truth: pl.DataFrame, scale: LakeScale) -> None:
    """Render and write every photo's JPEG; a lake of more than one chunk is spread over a
    process per core (rendering holds the GIL too often for threads to use two cores)."""
    rows = photos.select("photo_id", "image_key").join(truth, on="photo_id").select(
        "photo_id", "image_key", "visual_class", "style"
    ).rows()  # fmt: skip
    chunks = [rows[i : i + IMAGE_CHUNK] for i in range(0, len(rows), IMAGE_CHUNK)]
    if len(chunks) <= 1:
        for chunk in chunks:
            _write_image_chunk(store, scale, chunk)
        return
    with ProcessPoolExecutor(os.cpu_count(), mp_context=get_context("spawn")) as pool:
        list(pool.map(_write_image_chunk, repeat(store), repeat(scale), chunks))


def _write_image_chunk(store: LakeStore, scale: LakeScale, rows: list[tuple[int, str, str, str]]) -> None:
    for photo_id, key, visual_class, style in rows:
        rng = np.random.default_rng([scale.seed, photo_id])  # per photo: the same bytes in any process
        store.write_bytes(key, encode_jpeg(render(rng, visual_class, style, scale.image_width, scale.image_height)))


def _write_log_file(store: LakeStore, key: str, lines: list[str]) -> None:
    store.write_bytes(key, logs.gzip_lines(lines))


def _summary(files: list[dict]) -> dict:
    days: dict[str, Counter] = {}
    for f in files:
        c = days.setdefault(f["day"], Counter())
        c["files"] += 1
        c["lines"] += f["lines"]
        c["valid_events"] += f["valid_events"]
        c["duplicate_lines"] += f["duplicate_lines"]
        c["drift_lines"] += f["drift_lines"]
        c["quarantined"] += sum(f["defects"].values())
        for kind, n in f["defects"].items():
            c[kind] += n
    total = sum(days.values(), Counter())
    return {"days": {d: dict(c) for d, c in sorted(days.items())}, "total": dict(total)}


def _save_manifest(store: LakeStore, manifest: dict) -> None:
    manifest.update(_summary(manifest["files"]))
    store.write_bytes(MANIFEST_KEY, json.dumps(manifest, indent=2, default=str).encode())


def load_manifest(store: LakeStore) -> dict:
    return json.loads(store.read_bytes(MANIFEST_KEY))


def _emit(
    store: LakeStore,
    pool: ThreadPoolExecutor,
    rng: np.random.Generator,
    batch: logs.EventBatch,
    key: str,
    drift: bool,
    defect_rate: float,
) -> tuple[dict, Future]:
    """Render, corrupt and (in the background) write one log file; returns its report."""
    day = key.split("/")[1].removeprefix("dt=")
    report = logs.FileReport(key=key, day=day)
    lines = logs.plant_defects(rng, logs.to_jsonl_lines(rng, batch, drift), defect_rate, report)
    report.drift_lines = len(lines) if drift else 0
    out = asdict(report)
    out["defects"] = dict(report.defects)
    return out, pool.submit(_write_log_file, store, key, lines)


def generate_lake(store: LakeStore, app_db_url: str, scale: LakeScale = LakeScale(), images: bool = True) -> dict:
    """Write the app database, images (unless `images` is False: log-only benchmarks) and logs;
    return the manifest of what was planted."""
    rng = np.random.default_rng(scale.seed)
    start = date.fromisoformat(scale.start_date)
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    start_ms, end_ms = _epoch_ms(start_dt), _epoch_ms(start_dt + timedelta(days=scale.days))
    world = build_world(rng, scale.users, scale.photos, start, scale.days)

    write_app_db(app_db_url, world.users.drop("activity"), world.photos)
    if images:
        _write_images(store, world.photos, world.truth, scale)
    store.write_parquet(GROUND_TRUTH_FILE, world.truth.to_arrow())
    store.write_parquet(ACTIVITY_KEY, world.users.select("user_id", "activity").to_arrow())

    activity = world.users["activity"].to_numpy()
    scores = world.photos.join(world.truth, on="photo_id", how="left")
    posted_ms = scores["posted_at"].dt.epoch("ms").to_numpy()
    login = logs.logins(rng, activity, start_ms, end_ms - start_ms)
    post = logs.posts(scores["photo_id"].to_numpy(), scores["user_id"].to_numpy(), posted_ms, rng)
    budget = max(0, scale.events_per_day * scale.days - len(login) - len(post))
    inter = logs.interactions(
        rng, budget, scores["photo_id"].to_numpy(), posted_ms, scores["planted_score"].to_numpy(), activity
    )
    events = logs.EventBatch.concat([login, post, inter]).sorted()
    events = events.take(events.ts_ms < end_ms)

    hours = scale.days * 24
    drift_from = hours - 12  # the new field appears half-way through the last day
    late_hour = min(7, hours - 1)  # one producer's file for day one arrives after everything else
    hour_of = (events.ts_ms - start_ms) // logs.HOUR_MS
    part_of = rng.integers(0, scale.files_per_hour, size=len(events))
    part_of[(hour_of == late_hour) & (rng.random(len(events)) < 0.1)] = scale.files_per_hour
    bounds = np.searchsorted(hour_of, np.arange(hours + 1))

    files: list[dict] = []
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        late: dict | None = None
        for h in range(hours):
            sl = slice(bounds[h], bounds[h + 1])
            hour_batch = events.take(sl)
            parts = part_of[sl]
            for p in range(scale.files_per_hour + 1):
                mask = parts == p
                if not mask.any():
                    continue
                batch = hour_batch.take(mask)
                name = "part-late" if p == scale.files_per_hour else f"part-{p:02d}"
                key = logs.log_key(start_ms + h * logs.HOUR_MS, name)
                if p == scale.files_per_hour:
                    late = (batch, key, h >= drift_from)
                    continue
                report, future = _emit(store, pool, rng, batch, key, h >= drift_from, scale.defect_rate)
                files.append(report)
                pending.append(future)
        for future in pending:
            future.result()
        # One file delivered twice, under a new name: every line in it is a duplicate or a repeat defect.
        first = files[min(12, len(files) - 1)]
        redelivery = dict(first, key=first["key"].replace(".jsonl.gz", "-redelivery.jsonl.gz"))
        store.write_bytes(redelivery["key"], store.read_bytes(first["key"]))
        redelivery.update(valid_events=0, duplicate_lines=first["lines"] - sum(first["defects"].values()))
        files.append(redelivery)
        if late is not None:
            report, future = _emit(store, pool, rng, *late, scale.defect_rate)
            future.result()
            files.append(report)

    manifest = {
        "scale": asdict(scale),
        "app_db_url": app_db_url.split("@")[-1],
        "generated_through": datetime.fromtimestamp(end_ms / 1000, tz=UTC).isoformat(),
        "drift_field": "app_version",
        "late_files": [files[-1]["key"]] if late is not None else [],
        "redelivered_files": [redelivery["key"]],
        "files": files,
    }
    _save_manifest(store, manifest)
    return manifest


def append_hour(store: LakeStore, late_day: str | None = None) -> list[str]:
    """Deliver the next hour of logs after the last one simulated (and, optionally, a late
    file for an earlier day); returns the keys written."""
    manifest = load_manifest(store)
    scale = LakeScale(**manifest["scale"])
    hour_start = datetime.fromisoformat(manifest["generated_through"])
    rng = np.random.default_rng([scale.seed, int(hour_start.timestamp())])
    activity = store.read_parquet(ACTIVITY_KEY).column("activity").to_numpy()
    truth = pl.from_arrow(store.read_parquet(GROUND_TRUTH_FILE))
    h0 = _epoch_ms(hour_start)

    batch = logs.logins(rng, activity, h0, logs.HOUR_MS)
    n = scale.events_per_day // 24
    photo = rng.choice(truth["photo_id"].to_numpy(), size=n, p=_softmax(truth["planted_score"].to_numpy()))
    views = logs.EventBatch(
        ts_ms=h0 + rng.integers(0, logs.HOUR_MS, n),
        user_id=rng.choice(len(activity), size=n, p=activity / activity.sum()) + 1,
        photo_id=photo,
        event_type=rng.choice(logs.INTERACTIONS, size=n, p=logs.INTERACTION_SHARE).astype(np.int8),
        client=rng.integers(0, len(logs.CLIENTS), size=n).astype(np.int8),
    )
    written = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        todo = [(logs.EventBatch.concat([batch, views]).sorted(), logs.log_key(h0, "part-00"))]
        if late_day:
            day0 = _epoch_ms(datetime.fromisoformat(late_day).replace(tzinfo=UTC))
            late = logs.logins(rng, activity, day0, 24 * logs.HOUR_MS).sorted()
            todo.append((late, logs.log_key(day0 + 23 * logs.HOUR_MS, f"part-late-{hour_start:%Y%m%d%H}")))
        for events, key in todo:
            report, future = _emit(store, pool, rng, events, key, True, scale.defect_rate)
            future.result()
            manifest["files"].append(report)
            written.append(key)
    if late_day:
        manifest["late_files"].append(written[-1])
    manifest["generated_through"] = (hour_start + timedelta(hours=1)).isoformat()
    _save_manifest(store, manifest)
    return written


def _softmax(x: np.ndarray) -> np.ndarray:
    w = np.exp(x - x.max())
    return w / w.sum()
