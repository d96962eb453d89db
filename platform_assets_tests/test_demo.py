"""The demo's closing table: a ranged run's metadata (repeated on each of its partitions) is
counted once; runs add up."""

import dagster as dg

from platform_assets.defs.partitions import range_tags
from platform_assets.demo.run import Built

DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-04")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(), key=["features", "ranged"])
def ranged() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 10, "bytes": 2048})


@dg.asset(key=["staging", "whole"])
def whole() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 7})


def test_the_closing_table_counts_a_ranged_run_once_and_adds_runs() -> None:
    built = Built()
    built.add(dg.materialize([ranged], tags=range_tags("2026-11-01", "2026-11-03")))
    built.add(dg.materialize([ranged], partition_key="2026-11-01"))
    built.add(dg.materialize([whole]))
    assert built.rows == {"features/ranged": 20, "staging/whole": 7}
    assert built.bytes == {"features/ranged": 4096}
    rows = {r[0]: r[1:] for r in zip(*(c._cells for c in built.table().columns))}
    assert rows == {"features/ranged": ("3", "20", "4.0 KB"), "staging/whole": ("-", "7", "-")}
