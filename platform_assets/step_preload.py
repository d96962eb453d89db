"""Imported once by the cluster worker's forkserver (cluster_worker.py): Dagster, the project's
modules and its loaded definitions, which every step process forked from it then shares
instead of loading them again (about 1.4 s a step)."""

from platform_assets.definitions import defs

defs()
