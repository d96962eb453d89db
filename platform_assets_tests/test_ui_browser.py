"""The Dagster UI in a real browser: headless Chromium (Debian's package) driven by
Playwright opens the webserver, finds the asset layers, and opens a shard materialization
whose metadata shows the DVC hash and the registry commit. Screenshots go to test-artifacts/."""

import shutil
import socket
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.defs.partitions import range_tags
from platform_assets.lib.registry import shard_dir
from platform_assets_tests.support.helpers import ROOT, debian_command, make_lake, run_cli
from platform_assets_tests.support.production_stack import (
    FAST_EMBEDDINGS,
    free_port,
    start_webserver,
    stop_process_group,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
RANGE = range_tags("2026-11-01", "2026-11-02")


def test_ui_shows_the_layers_and_a_shard_materialization_with_its_dvc_hash(tmp_path, monkeypatch) -> None:
    from playwright.sync_api import sync_playwright

    browser_path = debian_command("chromium", "chromium")
    lake = make_lake(tmp_path / "lake")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", home)
    env = {
        "DAGSTER_HOME": str(home),
        "PLATFORM_ASSETS_LAKE": lake.store.root,
        "PLATFORM_ASSETS_APP_DB_URL": lake.app_db_url,
        "PLATFORM_ASSETS_WORKSPACE": str(tmp_path / "registry"),
        "PLATFORM_ASSETS_DVC_REMOTE": str(tmp_path / "dvc-remote"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from platform_assets.definitions import defs

    d = defs()
    with dg.DagsterInstance.get() as instance:
        assert d.resolve_job_def("app_db_job").execute_in_process(instance=instance).success
        for day in ("2026-11-01", "2026-11-02"):
            assert d.resolve_job_def("events_job").execute_in_process(instance=instance, partition_key=day).success
        assert d.resolve_job_def("features_job").execute_in_process(instance=instance, tags=RANGE).success
        for job in ("image_encoder_job", "embeddings_job"):
            assert (
                d.resolve_job_def(job)
                .execute_in_process(instance=instance, run_config=FAST_EMBEDDINGS[job], tags=RANGE)
                .success
            )
        assert d.resolve_job_def("shards_job").execute_in_process(instance=instance, partition_key="2026-11-01").success
    registry = Path(env["PLATFORM_ASSETS_WORKSPACE"])
    dvc_hash = yaml.safe_load((registry / f"{shard_dir('2026-11-01')}.dvc").read_text())["outs"][0]["md5"]
    commit = run_cli(registry, "git", "rev-parse", "HEAD").stdout.strip()  # the pin's commit in the registry
    assert run_cli(registry, "git", "log", "--oneline", "--", f"{shard_dir('2026-11-01')}.dvc").stdout.strip()

    port = free_port()
    web = start_webserver(port)
    ARTIFACTS.mkdir(exist_ok=True)
    try:

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(up, 120, "the webserver")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=browser_path,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/assets", wait_until="networkidle", timeout=120_000)
            skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter dialog
            if skip.count():
                skip.first.click()
            for layer in ("lake", "staging", "features", "embeddings", "shards", "models"):
                page.get_by_text(layer, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "asset-catalog.png"), full_page=True)
            page.goto(
                f"http://127.0.0.1:{port}/assets/shards/training_shards?partition=2026-11-01",
                wait_until="networkidle",
                timeout=120_000,
            )
            page.get_by_text(dvc_hash).first.wait_for(timeout=60_000)
            page.get_by_text(commit).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "shard-materialization.png"), full_page=True)
            browser.close()
    finally:
        stop_process_group(web)
    assert (ARTIFACTS / "shard-materialization.png").stat().st_size > 10_000
