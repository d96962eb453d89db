"""The code location: every definition under `defs/`, with the deployment's resources."""

import warnings

import dagster as dg

# events_job mixes the daily events (one day per run) with the ranged user activity (its one-hop
# refresh of a new file's day): Dagster warns on every load that the job takes the stricter
# backfill policy, which is the intent.
warnings.filterwarnings("ignore", message="Asset job events_job materializes assets with varying BackfillPolicies")


@dg.definitions
def defs() -> dg.Definitions:
    """Every module under `defs/`, scanned for assets, checks, jobs, sensors and schedules.

    Not `dg.load_from_defs_folder`: it also snapshots every installed component library (dagster's
    and dagster-aws's) for the UI's component catalogue, 1.4 s of every run launch, code server
    and CLI call, and this project defines no components."""
    from platform_assets import defs as defs_package
    from platform_assets.defs.executors import step_executor
    from platform_assets.defs.resources import build_resources

    with warnings.catch_warnings():  # the scan's preview status and the assets' beta parameters
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.load_definitions_from_package_module(
            defs_package,
            resources=build_resources(),
            executor=step_executor(),  # jobs without their own, automation runs
        )
