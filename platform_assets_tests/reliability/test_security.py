"""Security properties: the extract cannot write to the app database; test servers and the
webserver listen on loopback only; no credential ends up in the repository."""

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from platform_assets.defs.resources import AppDatabaseResource
from platform_assets_tests.support.helpers import ROOT
from platform_assets_tests.support.pg_server import postgres_server


def _create_users(url: str, id_type: str) -> None:
    """An empty `users` table, made through an ordinary (writable) connection."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE users (user_id {id_type})")
    engine.dispose()


def _try_write(db: AppDatabaseResource) -> None:
    with db.read_only_connection() as conn:
        conn.exec_driver_sql("INSERT INTO users (user_id) VALUES (1)")


def test_sqlite_extract_connection_is_read_only(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _create_users(url, "INTEGER")
    with pytest.raises(sa.exc.OperationalError, match="readonly|read-only|query_only|attempt to write"):
        _try_write(AppDatabaseResource(url=url))
    assert AppDatabaseResource(url=url).read_table("users").num_rows == 0


@pytest.mark.slow
def test_postgres_extract_connection_is_read_only() -> None:
    with postgres_server() as url:
        _create_users(url, "BIGINT")
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            _try_write(AppDatabaseResource(url=url))


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc/net/tcp* write them


def _listeners(owned: set[str] | None = None) -> set[tuple[str, int]]:
    """(local address, port) of every listening TCP socket on this machine (/proc/net/tcp,
    tcp6), or only of the sockets whose inode is in `owned`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and (owned is None or fields[9] in owned):  # 0A: LISTEN
                found.add((address, int(hex_port, 16)))
    return found


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` on this machine."""
    return {address for address, bound in _listeners() if bound == port}


def session_listeners(session: int) -> set[tuple[str, int]]:
    """The listening sockets of every process in `session` (a command and all it started)."""
    inodes = set()
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or os.getsid(int(proc.name)) != session:
                continue
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        inodes |= {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
    return _listeners(inodes)


@pytest.mark.e2e
@pytest.mark.slow
def test_every_server_the_tests_and_make_ui_start_listens_on_loopback_only(tmp_path) -> None:
    """The sockets themselves: the S3 API server, PostgreSQL, the Redis broker and `git daemon`
    listen on 127.0.0.1 (or ::1) and on no other address, and so does every socket that
    `make ui` opens (dagster dev: its webserver, daemon and code server)."""
    from platform_assets_tests.support.cluster_stack import git_daemon
    from platform_assets_tests.support.production_stack import free_port, stop_process_group, wait_for
    from platform_assets_tests.support.redis_server import redis_server
    from platform_assets_tests.support.s3_server import s3_server

    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "registry.git")], check=True)
    port = free_port()
    ui = subprocess.Popen(  # `-o env`: the environment `make test` built is used as it is
        ["make", "--no-print-directory", "-o", "env", "ui", f"UI_PORT={port}", f"DAGSTER_HOME={tmp_path / 'home'}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with s3_server() as s3, postgres_server() as pg, redis_server() as broker, git_daemon(tmp_path) as git:
            for url in (s3, pg, broker, git):
                addresses = listening_addresses(urlsplit(url).port)
                assert addresses and addresses <= LOOPBACK, (url, addresses)
        wait_for(lambda: port in {bound for _, bound in session_listeners(ui.pid)}, 120, "make ui to listen", 0.5)
        opened = session_listeners(ui.pid)
        assert {address for address, _ in opened} <= LOOPBACK, opened
    finally:
        stop_process_group(ui)


def test_no_credentials_in_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    secrets = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|aws_secret_access_key\s*=\s*\S{20,}")
    for name in tracked:
        path = ROOT / name
        if path.is_file() and path.stat().st_size < 2_000_000:
            assert not secrets.search(path.read_text(errors="ignore")), name


@pytest.mark.slow
def test_no_credential_reaches_the_event_log_or_the_output(tmp_path, capfd) -> None:
    """A run against a password-protected database URL and an S3 lake with a secret key, one
    that succeeds and one that fails: neither secret appears in any event or printed line."""
    import dagster as dg

    from platform_assets.defs.lake.raw_db import raw_users
    from platform_assets.defs.resources import LakeResource
    from platform_assets.lib.lake_store import LakeStore
    from platform_assets.lib.simulator import LakeScale, generate_lake
    from platform_assets_tests.support.s3_server import make_bucket, s3_server

    password, secret = "pg-pass-7f3a9c", "aws-secret-51b2e8"
    with postgres_server() as url, s3_server() as endpoint, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_SECRET_ACCESS_KEY", secret)
        make_bucket(endpoint, "lake")
        generate_lake(
            LakeStore(str(tmp_path)), url, LakeScale(users=20, photos=20, days=1, events_per_day=100), images=False
        )
        with_password = str(sa.make_url(url).set(password=password))
        lake = LakeResource(root="s3://lake/p", s3_endpoint_url=endpoint)
        with dg.instance_for_test() as instance:
            ok = dg.materialize(
                [raw_users],
                instance=instance,
                resources={"lake": lake, "app_db": AppDatabaseResource(url=with_password)},
            )
            down = str(sa.make_url(with_password).set(port=1))  # nothing listens on port 1
            failed = dg.materialize(
                [raw_users],
                instance=instance,
                raise_on_error=False,
                resources={"lake": lake, "app_db": AppDatabaseResource(url=down, attempts=2, max_backoff_s=0.1)},
            )
            assert ok.success and not failed.success
            records = [str(e) for run in (ok, failed) for e in instance.all_logs(run.run_id)]
    printed = capfd.readouterr()
    assert any("app database" in r and "***" in r for r in records)  # the failure names the database, masked
    for text in [*records, printed.out, printed.err]:
        assert password not in text and secret not in text


def test_partition_keys_are_validated_before_any_path_is_built(tmp_path) -> None:
    import dagster as dg

    from platform_assets.defs.resources import LakeResource
    from platform_assets.defs.staging.events import stage_events
    from platform_assets.lib.lake_layout import partition_key
    from platform_assets.lib.lake_store import LakeKeyError, LakeStore

    for bad in ("../../etc", "2026-11-01/../../x", "2026-13-45", "2026-11-01; DROP TABLE users"):
        with pytest.raises(ValueError):
            partition_key("staging/events", bad)
        with pytest.raises(dg.DagsterError, match="Could not find a partition"):
            dg.materialize([stage_events], partition_key=bad, resources={"lake": LakeResource(root=str(tmp_path))})
    store = LakeStore(str(tmp_path))
    for key in ("../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a b"):
        with pytest.raises(LakeKeyError):
            store.write_bytes(key, b"x")
    assert list(tmp_path.iterdir()) == []  # nothing was written anywhere
