"""`make demo`: a sample lake, the whole graph materialized on the embedded default instance."""

from __future__ import annotations

import functools
import os
import shutil

import dagster as dg

from platform_assets.defs.features.sensors import RANGE_END_TAG, RANGE_START_TAG
from platform_assets.defs.resources import DEMO_DIR, PROJECT_ROOT, workspace_resource
from platform_assets.lib.lake_layout import list_log_days
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, generate_lake

# Dagster's console logger at WARNING: the demo prints one line per stage; every event of every
# run is still in the instance (`make ui` → Runs).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run(fresh: bool = False) -> None:
    lake_dir = DEMO_DIR / "lake"
    os.environ.setdefault("PLATFORM_ASSETS_LAKE", str(lake_dir))
    os.environ.setdefault("PLATFORM_ASSETS_APP_DB_URL", f"sqlite:///{DEMO_DIR / 'app.db'}")
    store = LakeStore(os.environ["PLATFORM_ASSETS_LAKE"])
    if fresh and lake_dir.exists():
        shutil.rmtree(lake_dir)
    if store.is_s3 or not store.exists("_simulator/manifest.json"):
        lake_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating the demo lake in {store.root} ...", flush=True)
        generate_lake(store, os.environ["PLATFORM_ASSETS_APP_DB_URL"], LakeScale())

    from platform_assets.definitions import defs as load_defs

    defs = load_defs()
    run_job = functools.partial(_run_job, defs, dg.DagsterInstance.get())  # DAGSTER_HOME: .dagster_home via make
    run_job("app_db_job")
    days, _ = list_log_days(store)
    for day in days:
        print(f"materializing events for {day} ...", flush=True)
        run_job("events_job", partition_key=day)
    first, last = min(days), max(days)
    print(f"materializing features and the training set for {first} .. {last} in one run ...", flush=True)
    run_job("features_job", tags={RANGE_START_TAG: first, RANGE_END_TAG: last})
    print("training the image encoder and embedding images and titles ...", flush=True)
    run_job("embeddings_job")
    for day in days:
        print(f"writing augmented training shards for {day} ...", flush=True)
        run_job("shards_job", partition_key=day)

    print("training the popularity model on the pinned shards ...", flush=True)
    result = run_job("nightly_training_job")
    model = result.get_asset_materialization_events()[0].materialization.metadata
    mid, tag = model["model_id"].value, model["registry_tag"].value
    workspace = workspace_resource()
    print(f"model {mid}: {model['metrics'].value}")

    print(
        "\nDone. Where to look:\n"
        f"  lake (Parquet, logs, images): {store.root}\n"
        f"  data registry (git + DVC):    {workspace.root}  (each pin a commit: git -C {workspace.root} log --oneline)\n"
        f"  training shards:              {workspace.root}/shards  (read them: README, 'Training from the shards')\n"
        f"  model and manifest:           {workspace.root}/models/popularity/{mid}  (tag {tag})\n"
        f"  DVC remote (every pin):       {workspace.dvc_remote}\n"
        f"  verify the data:              .venv/bin/platform-assets verify [{mid}]\n"
        f"  reproduce the model later:    .venv/bin/platform-assets reproduce {mid}\n"
        f"  Dagster instance:             {os.environ.get('DAGSTER_HOME', '(temporary)')}  (every run's full log)\n"
        "  open the UI:                  make ui   (dagster dev -h 127.0.0.1 -p 3000, then http://127.0.0.1:3000)\n"
        "  deliver another hour of logs: .venv/bin/platform-assets lake append-hour --late-day "
        f"{next(iter(days), 'YYYY-MM-DD')}\n"
        f"  (project root: {PROJECT_ROOT})"
    )


def _run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, **kwargs) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def(job).execute_in_process(run_config=QUIET, instance=instance, **kwargs)
    if not result.success:
        raise SystemExit(f"run {result.run_id} of {job} failed: its log is in the instance (make ui → Runs)")
    return result
