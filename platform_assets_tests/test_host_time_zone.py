"""The host's time zone never changes the data: one lake, staged and featurized under UTC and
under two zones far from it (one with a half-hour offset), gives the same bytes."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from platform_assets_tests.support.helpers import SMALL, make_lake

pytestmark = pytest.mark.slow

ZONES = ("UTC", "Asia/Kolkata", "America/St_Johns")
# Staging, events and features of every day, then the sha256 of every file they wrote.
BUILD = """
import json, sys
from pathlib import Path
from platform_assets.lib.lake_store import LakeStore
from platform_assets_tests.support.helpers import Lake, files_under
from platform_assets_tests.test_features_assets import build_features
root = Path(sys.argv[1])
manifest = json.loads((root / "lake" / "_simulator" / "manifest.json").read_text())
build_features(Lake(LakeStore(str(root / "lake")), f"sqlite:///{root / 'app.db'}", manifest))
print(json.dumps({k: v for k, v in files_under(root / "lake").items() if k.startswith(("staging/", "features/"))}))
"""


def test_every_output_is_byte_identical_whatever_the_host_time_zone(tmp_path) -> None:
    lake = make_lake(tmp_path / "lake-source", SMALL)
    outputs = {}
    for zone in ZONES:
        copy = tmp_path / zone.replace("/", "-")
        shutil.copytree(tmp_path / "lake-source", copy)
        done = subprocess.run(
            [sys.executable, "-c", BUILD, str(copy)], capture_output=True, text=True, env={**os.environ, "TZ": zone}
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[zone] = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(outputs["UTC"]) >= 4 * len(lake.manifest["days"])  # events, quarantine and features of each day
    for zone in ZONES[1:]:
        assert outputs[zone] == outputs["UTC"], zone
