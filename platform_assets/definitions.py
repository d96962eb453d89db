"""The code location: every definition under `defs/`, with the deployment's resources."""

import warnings
from pathlib import Path

import dagster as dg

# events_job mixes the daily events (one day per run) with the ranged user activity (its one-hop
# refresh of a new file's day): Dagster warns on every load that the job takes the stricter
# backfill policy, which is the intent. Filtered here, outside the loader, which restores the
# warning filters after importing `defs/`.
warnings.filterwarnings("ignore", message="Asset job events_job materializes assets with varying BackfillPolicies")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
