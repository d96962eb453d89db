"""`make demo`: a sample lake, the whole graph materialized on the embedded default instance,
told as one line per stage with a progress bar on the per-day stages, every run's full event
log in `.demo/demo.log`, and a closing table of what was built."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

import dagster as dg
from rich.console import Console
from rich.progress import track
from rich.table import Table

from platform_assets.defs.materializations import run_log
from platform_assets.defs.partitions import range_tags
from platform_assets.defs.resources import workspace_resource
from platform_assets.lib.lake_layout import list_log_days
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, generate_lake
from platform_assets.settings import DEMO_DIR, LOCAL_LAKE, PROJECT_ROOT, app_db_url, lake_root

# Dagster's console logger at WARNING: the demo prints one line per stage; every event of every
# run is in the instance (`make ui` → Runs) and in DEMO_LOG.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DEMO_LOG = DEMO_DIR / "demo.log"


@dataclass
class Built:
    """Rows and bytes per asset over the demo's runs (a ranged run's metadata counted once)."""

    rows: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, set] = field(default_factory=dict)

    def add(self, result: dg.ExecuteInProcessResult) -> None:
        seen = set()
        for event in result.get_asset_materialization_events():
            mat = event.materialization
            name = mat.asset_key.to_user_string()
            self.partitions.setdefault(name, set()).add(mat.partition)
            if name in seen:
                continue
            seen.add(name)
            meta = {k: v.value for k, v in mat.metadata.items()}
            rows = meta.get("dagster/row_count", meta.get("samples"))
            if isinstance(rows, int):
                self.rows[name] = self.rows.get(name, 0) + rows
            if isinstance(meta.get("bytes"), int):
                self.bytes[name] = self.bytes.get(name, 0) + meta["bytes"]

    def table(self) -> Table:
        out = Table("asset", "partitions", "rows", "bytes", title="What was built")
        for name in sorted(self.partitions):
            parts = len(self.partitions[name] - {None})
            out.add_row(
                name,
                str(parts) if parts else "-",
                f"{self.rows[name]:,}" if name in self.rows else "-",
                _size(self.bytes[name]) if name in self.bytes else "-",
            )
        return out


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class Runner:
    """Runs the demo's jobs in process on one instance: quiet console, full log to a file."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, log: TextIO) -> None:
        self.defs, self.instance, self.log, self.built = defs, instance, log, Built()

    def __call__(self, job: str, **kwargs) -> dg.ExecuteInProcessResult:
        result = self.defs.resolve_job_def(job).execute_in_process(run_config=QUIET, instance=self.instance, **kwargs)
        for entry in run_log(self.instance, result.run_id):
            when = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC).isoformat(timespec="milliseconds")
            kind = entry.dagster_event_type.value if entry.dagster_event_type else ""
            self.log.write(f"{when} {job} {result.run_id[:8]} {entry.step_key or '-'} {kind} {entry.message}\n")
        self.log.flush()
        if not result.success:
            raise SystemExit(f"run {result.run_id} of {job} failed: its log is in {DEMO_LOG} and in make ui → Runs")
        self.built.add(result)
        return result


def _stage(console: Console, days: list[str], what: str) -> Iterable[str]:
    return track(days, description=what, console=console)


def run(fresh: bool = False) -> None:
    console = Console(highlight=False, soft_wrap=True)
    store = LakeStore(lake_root())  # the definitions below read the same settings
    if fresh and LOCAL_LAKE.exists():
        shutil.rmtree(LOCAL_LAKE)
    if store.is_s3 or not store.exists("_simulator/manifest.json"):
        LOCAL_LAKE.mkdir(parents=True, exist_ok=True)
        console.print(f"generating the demo lake in {store.root} ...")
        generate_lake(store, app_db_url(), LakeScale())

    from platform_assets.definitions import defs as load_defs
    from platform_assets.defs.lake.jobs import STAGE_EVENTS

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    with open(DEMO_LOG, "w") as log:
        run_job = Runner(load_defs(), dg.DagsterInstance.get(), log)  # DAGSTER_HOME: .dagster_home via make
        console.print(f"full run logs: {DEMO_LOG}")
        console.print("extracting the app database and staging users and photos ...")
        run_job("app_db_job")
        days = list(list_log_days(store)[0])
        for day in _stage(console, days, "staging events, day by day"):
            run_job("events_job", partition_key=day, asset_selection=STAGE_EVENTS)  # features: one ranged run below
        console.print(f"staged events of {len(days)} days ({days[0]} .. {days[-1]})")
        console.print(f"materializing features and the training set for {days[0]} .. {days[-1]} in one run ...")
        run_job("features_job", tags=range_tags(days[0], days[-1]))
        console.print("training the image encoder and embedding images and titles ...")
        run_job("image_encoder_job")
        run_job("embeddings_job", tags=range_tags(days[0], days[-1]))
        for day in _stage(console, days, "writing and pinning training shards"):
            run_job("shards_job", partition_key=day)
        console.print(f"wrote and pinned the shards of {len(days)} days")
        console.print("training the popularity model on the pinned shards ...")
        model = run_job("nightly_training_job").get_asset_materialization_events()[0].materialization.metadata
    mid, tag, metrics = model["model_id"].value, model["registry_tag"].value, model["metrics"].value
    console.print(run_job.built.table())
    console.print(f"model {mid}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    workspace = workspace_resource()
    console.print(
        "\nDone. Where to look:\n"
        f"  lake (Parquet, logs, images): {store.root}\n"
        f"  data registry (git + DVC):    {workspace.root}  (each pin a commit: git -C {workspace.root} log --oneline)\n"
        f"  training shards:              {workspace.root}/shards  (read them: README, 'Training from the shards')\n"
        f"  model and manifest:           {workspace.root}/models/popularity/{mid}  (tag {tag})\n"
        f"  DVC remote (every pin):       {workspace.dvc_remote}\n"
        f"  verify the data:              .venv/bin/platform-assets verify [{mid}]\n"
        f"  reproduce the model later:    .venv/bin/platform-assets reproduce {mid}\n"
        f"  every run's full log:         {DEMO_LOG}\n"
        f"  Dagster instance:             {run_job.instance.root_directory}\n"
        "  open the UI:                  make ui   (dagster dev -h 127.0.0.1 -p 3000, then http://127.0.0.1:3000)\n"
        "  deliver another hour of logs: .venv/bin/platform-assets lake append-hour --late-day "
        f"{next(iter(days), 'YYYY-MM-DD')}\n"
        f"  (project root: {PROJECT_ROOT})"
    )
