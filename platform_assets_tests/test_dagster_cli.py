"""Dagster's CLI works in the main environment, and DVC works beside it in its own.

dvc's hydra-core pins antlr4-python3-runtime 4.9.3, with which Dagster 1.13's selection parser
fails (`--select` ends in "TypeError: ord() expected string of length 1, but int found"). So DVC
lives in .venv-dvc/ (requirements-dvc.lock) and .venv/bin/dvc links to it; these tests run the
real commands, as a user does, from the repository root.
"""

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from platform_assets_tests.support.helpers import ROOT, SMALL, make_lake

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_asset_list_with_a_selection(tmp_path: Path) -> None:
    proc = run(
        [str(BIN / "dagster"), "asset", "list", "-m", "platform_assets.definitions", "--select", "staging/users"],
        {"DAGSTER_HOME": str(tmp_path)},
    )
    assert "staging/users" in proc.stdout.split()


def test_definitions_validate(tmp_path: Path) -> None:
    proc = run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"], {"DAGSTER_HOME": str(tmp_path)}
    )
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_dg_lists_and_checks_the_project(tmp_path: Path) -> None:
    """`dg` (dagster-dg-cli) reads the project from [tool.dg] in pyproject.toml, as after
    `source .venv/bin/activate`."""
    env = {"DAGSTER_HOME": str(tmp_path), "VIRTUAL_ENV": str(BIN.parent)}
    listed = run([str(BIN / "dg"), "list", "defs"], env).stdout
    for name in ("staging/events", "models/popularity_model", "new_logs_sensor", "workspace"):
        assert name in listed, name
    checked = run([str(BIN / "dg"), "check", "defs"], env)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_asset_materialize_with_a_selection_writes_the_partition(tmp_path: Path) -> None:
    lake = make_lake(tmp_path, SMALL)
    day = SMALL.start_date  # the lake's first day
    # stage_events is one multi-asset that cannot be subset: --select staging/events alone is refused.
    home = tmp_path / "dagster_home"
    home.mkdir()
    run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "platform_assets.definitions",
            "--select",
            "staging/events,staging/events_quarantine",
            "--partition",
            day,
        ],
        {
            "DAGSTER_HOME": str(home),
            "PLATFORM_ASSETS_LAKE": lake.store.root,
            "PLATFORM_ASSETS_APP_DB_URL": lake.app_db_url,
            "PLATFORM_ASSETS_START_DATE": "2026-01-01",
        },
    )

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags.get("dagster/partition") == day
    assert (Path(lake.store.root) / "staging" / "events" / f"dt={day}" / "part-0.parquet").is_file()


def test_dvc_is_a_separate_tool_not_a_library_here() -> None:
    assert importlib.util.find_spec("dvc") is None, "dvc is installed in the main environment: rebuild .venv"
    assert importlib.metadata.version("antlr4-python3-runtime").startswith("4.13.")

    pinned = re.search(r"^dvc==(\S+)$", (ROOT / "requirements-dvc.lock").read_text(), re.M).group(1)
    dvc = BIN / "dvc"
    assert dvc.is_symlink(), f"{dvc} should link to the DVC tool environment (make env)"
    proc = run([str(dvc), "--version"], {})
    assert proc.stdout.strip() == pinned == "3.67.0"
