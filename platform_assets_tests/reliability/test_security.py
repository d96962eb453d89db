"""Security properties: the extract cannot write to the app database; test servers and the
webserver listen on loopback only; no credential ends up in the repository."""

import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from platform_assets.defs.resources import AppDatabaseResource
from platform_assets_tests.pg_server import postgres_server

ROOT = Path(__file__).resolve().parents[2]


def _try_write(db: AppDatabaseResource) -> None:
    with db.read_only_connection() as conn:
        conn.exec_driver_sql("INSERT INTO users (user_id) VALUES (1)")


def test_sqlite_extract_connection_is_read_only(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (user_id INTEGER)")
    engine.dispose()
    with pytest.raises(sa.exc.OperationalError, match="readonly|read-only|query_only|attempt to write"):
        _try_write(AppDatabaseResource(url=url))
    assert AppDatabaseResource(url=url).read_table("users").num_rows == 0


def test_postgres_extract_connection_is_read_only() -> None:
    with postgres_server() as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE users (user_id BIGINT)")
        engine.dispose()
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            _try_write(AppDatabaseResource(url=url))


def test_servers_bind_to_loopback_by_default() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "dagster dev -w workspace.yaml -h 127.0.0.1" in makefile
    for helper in ("s3_server.py", "pg_server.py", "production_stack.py"):
        text = (ROOT / "platform_assets_tests" / helper).read_text()
        assert "0.0.0.0" not in text and "127.0.0.1" in text


def test_no_credentials_in_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    secrets = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|aws_secret_access_key\s*=\s*\S{20,}")
    for name in tracked:
        path = ROOT / name
        if path.is_file() and path.stat().st_size < 2_000_000:
            assert not secrets.search(path.read_text(errors="ignore")), name
