"""The settings: one declaration each in `platform_assets/settings.py`, the docs' tables rendered
from them, read when asked for, and a bad or missing one refused with one message naming it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets import settings
from platform_assets.settings import CLUSTER_README, README, SETTINGS, TABLE_HEADERS, SettingError
from platform_assets_tests.support.helpers import ROOT

REWRITE = "run: .venv/bin/python -m platform_assets.settings"


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting unset: each test sets what it reads."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def table_rows(doc: str) -> dict[str, str]:
    """`doc`'s settings table, parsed: each variable's default column."""
    lines = (ROOT / doc).read_text().split("\n")
    start, end = settings.table_span(lines, doc)
    rows = {}
    for line in lines[start + 2 : end]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3 and re.fullmatch(r"`[A-Z0-9_]+`", cells[0]), f"{doc}: not a settings row: {line}"
        rows[cells[0].strip("`")] = cells[1]
    return rows


@pytest.mark.parametrize("doc", [README, CLUSTER_README])
def test_the_docs_tables_list_every_setting_with_its_default(doc: str) -> None:
    rows = table_rows(doc)
    declared = {name: s for name, s in SETTINGS.items() if s.doc == doc}
    assert set(rows) - set(SETTINGS) == set(), f"{doc} lists settings settings.py does not declare; {REWRITE}"
    assert set(declared) - set(rows) == set(), f"settings missing from {doc}'s table; {REWRITE}"
    assert {n: d for n, d in rows.items()} == {n: s.table_default() for n, s in declared.items()}, REWRITE
    lines = (ROOT / doc).read_text().split("\n")
    start, end = settings.table_span(lines, doc)
    assert lines[start:end] == settings.table(doc), REWRITE  # the descriptions too, in declaration order


def test_every_setting_is_in_one_table_and_every_name_the_project_mentions_is_declared() -> None:
    assert {s.doc for s in SETTINGS.values()} == set(TABLE_HEADERS)
    assert set(table_rows(README)).isdisjoint(table_rows(CLUSTER_README))
    texts = [
        *ROOT.glob("*.md"),
        *ROOT.glob("deploy/**/*.md"),
        *ROOT.glob("deploy/**/*.yaml"),
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("platform_assets/**/*.py"),
    ]
    mentioned = {m for path in texts for m in re.findall(r"PLATFORM_ASSETS_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    assert mentioned - set(SETTINGS) == set(), "mentioned but not declared in platform_assets/settings.py"


def test_only_the_settings_module_reads_the_environment() -> None:
    """Writes for a library or a child process are fine (`setdefault`, `{**os.environ, ...}`); reads are not."""
    read = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[[^\]]+\](?!\s*=)|environ\.get\(")
    readers = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "platform_assets").rglob("*.py")
        if path.name != "settings.py" and read.search(path.read_text())
    ]
    assert readers == [], "read settings through platform_assets.settings"


def test_the_settings_module_imports_no_dagster() -> None:
    """lib/ reads its settings there, and lib/ never imports Dagster."""
    code = "import sys, platform_assets.settings, platform_assets.lib.registry; print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_local_defaults_are_the_project_directories_and_values_are_read_when_asked(monkeypatch) -> None:
    assert settings.deployment() == "local" and not settings.served()
    assert settings.lake_root() == str(ROOT / ".demo" / "lake")
    assert settings.app_db_url() == f"sqlite:///{ROOT / '.demo' / 'app.db'}"
    assert settings.workspace_root() == str(ROOT / "data") and settings.dvc_remote() == str(ROOT / ".dvc-remote")
    assert settings.registry_git_remote() is None and settings.s3_endpoint_url() is None
    assert (settings.start_date(), settings.image_size(), settings.background_nice()) == ("2026-01-01", 64, 10)
    assert (settings.queue_wait_seconds(), settings.redelivery_seconds()) == (600, 6 * 3600)
    monkeypatch.setenv("PLATFORM_ASSETS_LAKE", "s3://lake/prefix")
    monkeypatch.setenv("PLATFORM_ASSETS_START_DATE", "2025-02-03")
    monkeypatch.setenv("PLATFORM_ASSETS_IMAGE_SIZE", "")  # empty is unset
    assert (settings.lake_root(), settings.start_date(), settings.image_size()) == (
        "s3://lake/prefix",
        "2025-02-03",
        64,
    )
    monkeypatch.setenv("PLATFORM_ASSETS_DEPLOYMENT", "production")
    assert settings.image_size() == 224


@pytest.mark.parametrize(
    ("name", "value", "read", "message"),
    [
        ("PLATFORM_ASSETS_DEPLOYMENT", "staging", settings.deployment, "PLATFORM_ASSETS_DEPLOYMENT='staging': use one of local, production, cluster"),
        ("PLATFORM_ASSETS_START_DATE", "2026-13-45", settings.start_date, "PLATFORM_ASSETS_START_DATE='2026-13-45' is not a date: use YYYY-MM-DD, e.g. 2026-01-01"),
        ("PLATFORM_ASSETS_START_DATE", "2026-3-1", settings.start_date, "PLATFORM_ASSETS_START_DATE='2026-3-1' is not a date"),
        ("PLATFORM_ASSETS_IMAGE_SIZE", "224px", settings.image_size, "PLATFORM_ASSETS_IMAGE_SIZE='224px': set a whole number of pixels, e.g. 224"),
        ("PLATFORM_ASSETS_BACKGROUND_NICE", "20", settings.background_nice, "PLATFORM_ASSETS_BACKGROUND_NICE='20': set a whole number from 0 (normal priority) to 19 (lowest)"),
        ("PLATFORM_ASSETS_QUEUE_WAIT_S", "0", settings.queue_wait_seconds, "PLATFORM_ASSETS_QUEUE_WAIT_S='0': set a whole number of seconds (default 600)"),
        ("PLATFORM_ASSETS_STEP_REDELIVERY_S", "6h", settings.redelivery_seconds, "PLATFORM_ASSETS_STEP_REDELIVERY_S='6h': set a whole number of seconds, longer than the longest step"),
        ("PLATFORM_ASSETS_BROKER_URL", "amqp://guest@broker//", settings.broker_url, "PLATFORM_ASSETS_BROKER_URL='amqp://guest@broker//': PLATFORM_ASSETS_DEPLOYMENT=cluster needs the broker's address, e.g. redis://broker-host:6379/0"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_the_setting_the_value_and_the_fix(monkeypatch, name, value, read, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as err:
        read()
    assert str(err.value).startswith(message), str(err.value)
    assert isinstance(err.value, ValueError)  # what the CLI turns into one line and exit status 2


@pytest.mark.parametrize("deployment", ["production", "cluster"])
def test_production_requires_every_location(monkeypatch, deployment: str) -> None:
    monkeypatch.setenv("PLATFORM_ASSETS_DEPLOYMENT", deployment)
    for read, name in [
        (settings.lake_root, "PLATFORM_ASSETS_LAKE"),
        (settings.app_db_url, "PLATFORM_ASSETS_APP_DB_URL"),
        (settings.workspace_root, "PLATFORM_ASSETS_WORKSPACE"),
        (settings.dvc_remote, "PLATFORM_ASSETS_DVC_REMOTE"),
        (settings.registry_git_remote, "PLATFORM_ASSETS_REGISTRY_GIT_REMOTE"),
    ]:
        expected = f"{name} is not set: PLATFORM_ASSETS_DEPLOYMENT={deployment} requires it (see deploy/README.md)"
        with pytest.raises(SettingError, match=re.escape(expected)):
            read()
        monkeypatch.setenv(name, "/srv/x")
        assert read() == "/srv/x"
    assert settings.s3_endpoint_url() is None  # optional everywhere
    with pytest.raises(
        SettingError, match=re.escape("PLATFORM_ASSETS_BROKER_URL='': PLATFORM_ASSETS_DEPLOYMENT=cluster")
    ):
        settings.broker_url()


def test_production_definitions_fail_to_load_naming_a_missing_location(monkeypatch, tmp_path) -> None:
    from platform_assets.defs.resources import build_resources

    monkeypatch.setenv("PLATFORM_ASSETS_DEPLOYMENT", "production")
    for name in ("PLATFORM_ASSETS_WORKSPACE", "PLATFORM_ASSETS_DVC_REMOTE", "PLATFORM_ASSETS_REGISTRY_GIT_REMOTE"):
        monkeypatch.setenv(name, str(tmp_path / name))
    with pytest.raises(ValueError, match="PLATFORM_ASSETS_LAKE is not set: PLATFORM_ASSETS_DEPLOYMENT=production"):
        build_resources()
    monkeypatch.setenv("PLATFORM_ASSETS_LAKE", str(tmp_path))
    monkeypatch.setenv("PLATFORM_ASSETS_APP_DB_URL", "postgresql://reader:secret@db/app")
    resources = build_resources()
    assert "secret" not in repr(resources["app_db"].url)  # an EnvVar, resolved in each run


def test_the_cli_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PLATFORM_ASSETS_DEPLOYMENT": "production"}
    env.pop("PLATFORM_ASSETS_LAKE", None)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("platform-assets")), "lake", "append-hour"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "platform-assets: PLATFORM_ASSETS_LAKE is not set: PLATFORM_ASSETS_DEPLOYMENT=production requires it "
        "(see deploy/README.md)\n"
    )
