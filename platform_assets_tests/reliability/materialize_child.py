"""Materialize one asset partition in a process of its own, so a test can SIGKILL it mid-run.

    python -m platform_assets_tests.reliability.materialize_child <events|shards> <day> <lake> <app_db_url> <workspace> [dvc_remote [s3_endpoint_url]]

`workspace` is the data registry's root; `dvc_remote` its DVC remote (a directory or
s3://bucket/prefix; by default the directory `dvc-remote` beside the registry) and
`s3_endpoint_url` the S3 API endpoint of an s3:// remote.

Prints "ready" once imported (imports take seconds; the kill must land in the work itself).
"""

import sys
from pathlib import Path

import dagster as dg

from platform_assets.defs.resources import AppDatabaseResource, ImagesResource, LakeResource, WorkspaceResource
from platform_assets.defs.shards.assets import training_shards
from platform_assets.defs.staging.events import stage_events
from platform_assets.lib.images.sizes import DEFAULT_IMAGE_SIZE

ASSETS = {"events": stage_events, "shards": training_shards}
CONFIG = {
    "shards": {"ops": {"shards__training_shards": {"config": {"target_shard_mb": 1}}}},
    "events": {"ops": {"stage_events": {"config": {"restage": True}}}},  # as a backfill: the whole day again
}


def default_remote(workspace: str) -> str:
    """The directory remote a registry gets when the caller names none: `dvc-remote` beside it."""
    return str(Path(workspace).parent / "dvc-remote")


def command(
    asset: str,
    day: str,
    lake_root: str,
    app_db_url: str,
    workspace: str,
    dvc_remote: str | None = None,
    s3_endpoint_url: str | None = None,
) -> list[str]:
    """The command line that runs this module for one partition (for the tests that import it)."""
    remote = [dvc_remote or default_remote(workspace), *([s3_endpoint_url] if s3_endpoint_url else [])]
    return [sys.executable, "-m", __name__, asset, day, lake_root, app_db_url, workspace, *remote]


def main() -> None:
    name, day, lake, app_db, workspace = sys.argv[1:6]
    remote = sys.argv[6] if len(sys.argv) > 6 else default_remote(workspace)
    endpoint = sys.argv[7] if len(sys.argv) > 7 else None
    resources = {
        "lake": LakeResource(root=lake),
        "app_db": AppDatabaseResource(url=app_db),
        "workspace": WorkspaceResource(root=workspace, dvc_remote=remote, s3_endpoint_url=endpoint),
        "images": ImagesResource(size=DEFAULT_IMAGE_SIZE),
    }
    print("ready", flush=True)
    result = dg.materialize([ASSETS[name]], partition_key=day, resources=resources, run_config=CONFIG.get(name, {}))
    sys.exit(0 if result.success else 1)


if __name__ == "__main__":
    main()
