"""Every resource key, bound once. `PLATFORM_ASSETS_DEPLOYMENT` picks local or production;
only these bindings and the Dagster instance differ between the two. Every setting is read
through `platform_assets.settings`."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import dagster as dg
import polars as pl
import pyarrow as pa
import sqlalchemy as sa
import tenacity
from pydantic import Field

from platform_assets import settings
from platform_assets.lib.images.sizes import PRODUCTION_IMAGE_SIZE
from platform_assets.lib.lake_store import S3_ATTEMPTS, LakeStore
from platform_assets.lib.raw_snapshot import relaxed_concat
from platform_assets.lib.registry import Registry
from platform_assets.settings import deployment as deployment  # re-exported: defs/ imports it from here
from platform_assets.settings import served

T = TypeVar("T")


class LakeResource(dg.ConfigurableResource):
    """The data lake: a local directory, or `s3://bucket/prefix` on any S3 API."""

    root: str = Field(description="Local directory or s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 API endpoint (MinIO, a test server).")
    s3_region: str | None = Field(default=None)
    s3_attempts: int = Field(default=S3_ATTEMPTS, ge=1, description="Tries per S3 request (standard backoff).")

    def store(self) -> LakeStore:
        store = LakeStore(self.root, self.s3_endpoint_url, self.s3_region, self.s3_attempts)
        if not store.is_s3 and not Path(self.root).is_dir():
            raise ValueError(
                f"lake root {self.root!r} is not a directory: run `platform-assets lake generate` "
                f"or set {settings.LAKE.name} to an existing directory or s3://bucket/prefix"
            )
        return store


class AppDatabaseUnavailableError(RuntimeError):
    """The app database could not be read after every retry (the message names it, without password)."""


def _transient(exc: BaseException) -> bool:
    """A dropped or refused connection, or a busy SQLite file, can heal; a missing table cannot."""
    if not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    return "no such table" not in str(exc.orig) and "no such column" not in str(exc.orig)


class AppDatabaseResource(dg.ConfigurableResource):
    """The photo app's database, read through SQLAlchemy (SQLite or PostgreSQL)."""

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:///app.db or postgresql://...")
    batch_rows: int = Field(default=50_000, description="Rows fetched per round trip.")
    attempts: int = Field(default=5, ge=1, description="Tries per read when the server drops or refuses connections.")
    max_backoff_s: float = Field(default=8.0, description="Longest wait between tries (exponential, with jitter).")

    def describe(self) -> str:
        """The database's URL without its password: safe for errors and logs."""
        return sa.make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def read_only_connection(self) -> Iterator[sa.Connection]:
        """A connection that cannot write: a read-only transaction on PostgreSQL, `query_only` on
        SQLite. The extract never needs more, whatever the credentials allow."""
        url = sa.make_url(self.url)
        if url.get_backend_name() == "sqlite":  # opened read-only by URI: a wrong path is never created
            path = Path(url.database or "")
            if not path.is_file():
                raise ValueError(
                    f"app database file {path} does not exist: set {settings.APP_DB_URL.name} to an "
                    "existing database (sqlite:///path or postgresql://...), or run `platform-assets "
                    "lake generate` for the sample one"
                )
            url = url.set(database=f"file:{path.resolve()}?mode=ro", query={"uri": "true"})
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                elif conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA query_only = ON")
                yield conn
        finally:
            engine.dispose()

    def extract(self, table: str, write: Callable[[Iterator[pl.DataFrame]], T]) -> T:
        """`write(batches)` of the whole table, streamed `batch_rows` at a time with a server-side
        cursor where the driver supports one.

        A dropped or refused connection is retried with exponential backoff (the whole read and
        write: it is one consistent snapshot); past `attempts` the error names the database."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential_jitter(initial=0.5, max=self.max_backoff_s),
            retry=tenacity.retry_if_exception(_transient),
            reraise=True,
        )
        try:
            return retrying(self._extract, table, write)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if not _transient(exc):
                raise ValueError(
                    f"app database {self.describe()}: reading {table!r} failed: {str(exc.orig).strip()}"
                ) from None
            raise AppDatabaseUnavailableError(
                f"app database {self.describe()} unavailable: reading {table!r} failed {self.attempts} times; "
                f"last error: {str(exc.orig).strip()}"
            ) from None

    def read_table(self, table: str) -> pa.Table:
        """The whole table in memory (small tables, tests and benchmarks; the raw snapshots stream)."""
        return self.extract(table, relaxed_concat)

    def _extract(self, table: str, write: Callable[[Iterator[pl.DataFrame]], T]) -> T:
        with self.read_only_connection() as conn:
            conn = conn.execution_options(stream_results=True, max_row_buffer=self.batch_rows)
            quoted = conn.dialect.identifier_preparer.quote(table)
            return write(
                pl.read_database(f"SELECT * FROM {quoted}", conn, iter_batches=True, batch_size=self.batch_rows)
            )


class ImagesResource(dg.ConfigurableResource):
    """The side of the square images the encoder reads and the shards store: one setting, so
    the encoder, its embeddings and the training pixels agree."""

    size: int = Field(
        default=PRODUCTION_IMAGE_SIZE,
        ge=16,
        le=1024,
        description="Pixels per side (PLATFORM_ASSETS_IMAGE_SIZE): 224 in production, 64 in the local demo.",
    )


class WorkspaceResource(dg.ConfigurableResource):
    """The data registry: training shards and models in a git repository of their own, each pin
    a commit, each model a tag, every object pushed to the DVC remote (see lib/registry.py)."""

    root: str = Field(description="Local directory of the registry (created, or cloned from git_remote, on first use).")
    dvc_remote: str = Field(description="DVC remote every pin is pushed to: a directory or s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 API endpoint of an s3:// remote.")
    git_remote: str | None = Field(default=None, description="Git remote the registry's commits and tags go to.")

    def store(self) -> LakeStore:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        return LakeStore(self.root)

    def registry(self) -> Registry:
        return Registry(Path(self.root), self.dvc_remote, self.s3_endpoint_url, self.git_remote)


def images_resource() -> ImagesResource:
    """PLATFORM_ASSETS_IMAGE_SIZE, else 224 in production and the demo's 64 locally; a value
    that is not a whole number fails here, when the definitions load, naming the setting."""
    return ImagesResource(size=settings.image_size())


def workspace_resource() -> WorkspaceResource:
    """The registry from the environment; the CLI's `verify` and `reproduce` use the same one."""
    return WorkspaceResource(
        root=settings.workspace_root(),
        dvc_remote=settings.dvc_remote(),
        s3_endpoint_url=settings.s3_endpoint_url(),
        git_remote=settings.registry_git_remote(),
    )


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """Local defaults live in the project (`.demo/`, `data/`, `.dvc-remote/`: settings.py); production
    requires every location from the environment, checked here, when the definitions load. There the
    lake and the app database are bound as `EnvVar`s, resolved in each run: their values (a URL's
    password) stay out of the definitions' configuration."""
    lake, app_db = settings.lake_root(), settings.app_db_url()
    if served():
        lake, app_db = dg.EnvVar(settings.LAKE.name), dg.EnvVar(settings.APP_DB_URL.name)
    return {
        "lake": LakeResource(root=lake, s3_endpoint_url=settings.s3_endpoint_url(), s3_region=settings.aws_region()),
        "app_db": AppDatabaseResource(url=app_db),
        "workspace": workspace_resource(),
        "images": images_resource(),
    }
