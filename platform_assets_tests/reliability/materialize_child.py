"""Materialize one asset partition in a process of its own, so a test can SIGKILL it mid-run.

    python -m platform_assets_tests.reliability.materialize_child <events|shards> <day> <lake> <app_db_url> <workspace> [dvc_remote]

Prints "ready" once imported (imports take seconds; the kill must land in the work itself).
"""

import sys

import dagster as dg

from platform_assets.defs.resources import AppDatabaseResource, LakeResource, WorkspaceResource
from platform_assets.defs.shards.assets import training_shards
from platform_assets.defs.staging.events import stage_events

ASSETS = {"events": stage_events, "shards": training_shards}
CONFIG = {"shards": {"ops": {"shards__training_shards": {"config": {"target_shard_mb": 1}}}}}


def command(asset: str, day: str, lake_root: str, app_db_url: str, workspace: str, *remote: str) -> list[str]:
    """The command line that runs this module for one partition (for the tests that import it)."""
    return [sys.executable, "-m", __name__, asset, day, lake_root, app_db_url, workspace, *remote]


def main() -> None:
    name, day, lake, app_db, workspace = sys.argv[1:6]
    remote = sys.argv[6] if len(sys.argv) > 6 else None
    resources = {"lake": LakeResource(root=lake), "app_db": AppDatabaseResource(url=app_db),
                 "workspace": WorkspaceResource(root=workspace, dvc_remote=remote)}
    print("ready", flush=True)
    result = dg.materialize([ASSETS[name]], partition_key=day, resources=resources, run_config=CONFIG.get(name, {}))
    sys.exit(0 if result.success else 1)


if __name__ == "__main__":
    main()
