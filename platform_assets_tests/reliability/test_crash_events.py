"""Crash safety of `events`: SIGKILL a real process in the middle of staging a big day (at
the moment the sorted events are being written, then at fractions of an uninterrupted run).
Afterwards no partial output is visible (every visible file is byte for byte the file an
uninterrupted run writes) and a rerun writes the uninterrupted run's files."""

import shutil
import time
from pathlib import Path

import pytest

from platform_assets.lib.simulator import LakeScale
from platform_assets_tests.reliability.killable_child import Child
from platform_assets_tests.support.helpers import Lake, files_under, make_lake

pytestmark = pytest.mark.slow

BIG_DAY = LakeScale(users=400, photos=300, days=1, events_per_day=400_000, files_per_hour=2, defect_rate=0.005, seed=5)


@pytest.fixture(scope="module")
def big_day(tmp_path_factory) -> tuple[Lake, Path]:
    root = tmp_path_factory.mktemp("crash-events")
    return make_lake(root, BIG_DAY), root


def test_killed_events_run_leaves_no_partial_partition_and_reruns_byte_identical(big_day) -> None:
    lake, root = big_day
    staging = Path(lake.store.root) / "staging"
    registry, tmp = root / "ws" / "registry", root / "tmp"
    first = Child("events", lake, registry, tmp).finish()  # uninterrupted
    reference = files_under(staging)
    assert {k.split("/")[0] for k in reference} == {"events", "events_quarantine"}

    writing = lambda: any(tmp.glob("events-*/events.parquet"))  # noqa: E731 - the sorted events half written
    seconds = min(first, Child("events", lake, registry, tmp).finish())
    for i, fraction in enumerate([None, 0.2, 0.5, 0.8]):  # the marker, then fractions of an uninterrupted run
        for _ in range(3):  # a busy machine's run can outrun its kill: then kill the next one sooner
            shutil.rmtree(staging)
            child = Child("events", lake, registry, tmp)
            at = None if fraction is None else child.started + fraction * seconds
            landed = child.kill_when(writing if at is None else lambda at=at: time.monotonic() > at)
            visible = files_under(staging) if staging.exists() else {}
            assert all(reference[k] == v for k, v in visible.items()), f"kill {i}: a partial file is visible"
            Child("events", lake, registry, tmp).finish()
            assert files_under(staging) == reference, f"kill {i}: the rerun differs from the uninterrupted run"
            if landed:
                break
            fraction = fraction and fraction / 2
        else:
            pytest.fail(f"kill {i}: the run finished before the kill, three times")
