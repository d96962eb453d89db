"""Every setting of the project: an environment variable declared once here, with its default,
the deployments that require it, a one-line description and the error that names it and the fix.

Values are read when asked for, never frozen at import, and checked as they are read: a wrong
one fails at once with one message (`SettingError`, a `ValueError`). The rest of the project
reads the environment through the accessors below only. No Dagster here: `lib/` reads its
settings here too.

The settings tables of README.md and deploy/cluster/README.md are rendered from `SETTINGS`:
`.venv/bin/python -m platform_assets.settings` rewrites them, and a test compares."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from platform_assets.lib.images.sizes import DEFAULT_IMAGE_SIZE, PRODUCTION_IMAGE_SIZE

# Where the local deployment keeps its data when the environment names no other place: the
# lake and app database under `.demo/` (what `make demo` generates), the data registry in
# `data/`, its DVC remote in `.dvc-remote/`. Production and the cluster set every location.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = PROJECT_ROOT / ".demo"
LOCAL_LAKE = DEMO_DIR / "lake"
LOCAL_APP_DB_URL = f"sqlite:///{DEMO_DIR / 'app.db'}"
LOCAL_REGISTRY = PROJECT_ROOT / "data"
LOCAL_DVC_REMOTE = PROJECT_ROOT / ".dvc-remote"

DEPLOYMENTS = ("local", "production", "cluster")  # cluster: production's resources, steps on Celery workers
SERVED = ("production", "cluster")  # every location from the environment, nothing from the project's directories

# Linux's CFS gives a nice-10 thread about a tenth of a nice-0 one's share of a busy core; an
# idle core it still takes whole, so background runs lose nothing when nothing else runs.
DEFAULT_BACKGROUND_NICE = 10
DEFAULT_QUEUE_WAIT_S = 600
# A delivered step not acknowledged within this many seconds (its worker gone) is delivered again.
# It must exceed the longest step: a step still running past it would run twice.
DEFAULT_REDELIVERY_S = 6 * 3600
BROKER_SCHEMES = ("redis", "rediss")  # Redis or Valkey: the broker and the result backend in one server

README = "README.md"
CLUSTER_README = "deploy/cluster/README.md"
MISSING = "{name} is not set: PLATFORM_ASSETS_DEPLOYMENT={deployment} requires it (see deploy/README.md)"


class SettingError(ValueError):
    """A setting that cannot work; the message names it, its value and the fix."""


@dataclass(frozen=True)
class Setting:
    """One environment variable. `parse` turns its text into the value, raising ValueError on a
    bad one; `error` and `missing` are the messages, with `{name}`, `{value}` (repr) and
    `{deployment}` filled in."""

    name: str
    description: str  # one line of Markdown: the row of its table in `doc`
    parse: Callable[[str], Any] = str
    error: str = ""
    default: str | None = None  # when unset (the local deployment's value)
    served_default: str | None = None  # when unset in production and the cluster, if not `default`
    required_in: tuple[str, ...] = ()  # the deployments that must set it
    missing: str = MISSING
    doc: str = README  # the document whose settings table lists it
    shown_default: str | None = None  # the table's default column, where `default` is computed elsewhere

    def raw(self) -> str | None:
        """The variable's text; empty is unset."""
        return os.environ.get(self.name) or None

    def read(self, required: bool = False) -> Any:
        """The value, checked now: the variable, else the deployment's default (None when it has
        none). Unset where the deployment (or `required`) needs it, or bad: one message."""
        value = self.raw()
        if value is None:
            if required or (self.required_in and deployment() in self.required_in):
                raise SettingError(self.missing.format(name=self.name, value="''", deployment=deployment()))
            value = self.served_default if self.served_default is not None and served() else self.default
            if value is None:
                return None
        try:
            return self.parse(value)
        except ValueError:
            raise SettingError(self.error.format(name=self.name, value=repr(value))) from None

    def table_default(self) -> str:
        """The default column: the local default (paths relative to the project), then what
        production changes."""
        shown = self.shown_default or (f"`{_relative(self.default)}`" if self.default is not None else "–")
        if self.served_default is not None:
            shown += f" (production: `{self.served_default}`)"
        if self.required_in:
            where = "production" if set(self.required_in) == set(SERVED) else "/".join(self.required_in)
            shown += f" ({where}: required)"
        return shown


def _relative(value: str) -> str:
    return value.replace(f"{PROJECT_ROOT}/", "")


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(value)
        return value

    return parse


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
            raise ValueError(value)
        return int(value)

    return parse


def _day(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(value)
    date.fromisoformat(value)  # a ValueError for 2026-13-45
    return value


def _redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in BROKER_SCHEMES or not parts.hostname:
        raise ValueError(value)
    return value


DEPLOYMENT = Setting(
    "PLATFORM_ASSETS_DEPLOYMENT",
    "`local`, `production` or `cluster` (both require every location below; the cluster also the broker's "
    "settings in [deploy/cluster](deploy/cluster/README.md#settings))",
    _one_of(*DEPLOYMENTS),
    "{name}={value}: use one of " + ", ".join(DEPLOYMENTS),
    default="local",
)
LAKE = Setting(
    "PLATFORM_ASSETS_LAKE",
    "lake root: a directory or `s3://bucket/prefix`",
    default=str(LOCAL_LAKE),
    required_in=SERVED,
)
APP_DB_URL = Setting(
    "PLATFORM_ASSETS_APP_DB_URL",
    "SQLAlchemy URL of the app database",
    default=LOCAL_APP_DB_URL,
    required_in=SERVED,
)
S3_ENDPOINT_URL = Setting(
    "PLATFORM_ASSETS_S3_ENDPOINT_URL",
    "S3 API endpoint (MinIO, a test server); credentials come from the standard `AWS_*` variables",
)
AWS_REGION = Setting(
    "AWS_REGION",
    "region of the S3 lake (the standard AWS variable; `us-east-1` when unset)",
)
START_DATE = Setting(
    "PLATFORM_ASSETS_START_DATE",
    "first daily partition, `YYYY-MM-DD`",
    _day,
    "{name}={value} is not a date: use YYYY-MM-DD, e.g. 2026-01-01",
    default="2026-01-01",
)
WORKSPACE = Setting(
    "PLATFORM_ASSETS_WORKSPACE",
    "the data registry: training shards and models, a git + DVC repository of its own (created on first use)",
    default=str(LOCAL_REGISTRY),
    required_in=SERVED,
)
DVC_REMOTE = Setting(
    "PLATFORM_ASSETS_DVC_REMOTE",
    "DVC remote every pin is pushed to: a directory or `s3://bucket/prefix` (endpoint: "
    "`PLATFORM_ASSETS_S3_ENDPOINT_URL`)",
    default=str(LOCAL_DVC_REMOTE),
    required_in=SERVED,
)
REGISTRY_GIT_REMOTE = Setting(
    "PLATFORM_ASSETS_REGISTRY_GIT_REMOTE",
    "git remote the registry is cloned from and its commits and tags are pushed to",
    required_in=SERVED,
)
IMAGE_SIZE = Setting(
    "PLATFORM_ASSETS_IMAGE_SIZE",
    "side in pixels of the square images the encoder reads and the shards store",
    _whole(0),  # the range (16 to 1024) is ImagesResource's
    "{name}={value}: set a whole number of pixels, e.g. 224",
    default=str(DEFAULT_IMAGE_SIZE),
    served_default=str(PRODUCTION_IMAGE_SIZE),
)
BACKGROUND_NICE = Setting(
    "PLATFORM_ASSETS_BACKGROUND_NICE",
    "nice value (0–19) of the background lane's runs: the follow-on work takes the CPU after a new log file's "
    "run; `0` leaves them at normal priority",
    _whole(0, 19),
    "{name}={value}: set a whole number from 0 (normal priority) to 19 (lowest)",
    default=str(DEFAULT_BACKGROUND_NICE),
)
DVC = Setting(
    "PLATFORM_ASSETS_DVC",
    "the `dvc` executable (DVC runs from its own environment, `.venv-dvc/`)",
    shown_default="`.venv/bin/dvc`, else `dvc` on `PATH`",  # lib/registry.py's dvc_executable()
)
NO_BROKER = (
    "{name}={value}: PLATFORM_ASSETS_DEPLOYMENT=cluster needs the broker's address, e.g. "
    "redis://broker-host:6379/0 (see deploy/cluster/README.md)"
)
BROKER_URL = Setting(
    "PLATFORM_ASSETS_BROKER_URL",
    "`redis://host:6379/0` or `rediss://…`: the queues and the steps' results. Checked when the definitions "
    "load; pinged when a run starts and when a worker starts, failing at once with the setting's name when "
    "nothing answers",
    _redis_url,
    NO_BROKER,
    required_in=("cluster",),
    missing=NO_BROKER,  # unset reads as '': the same message
    doc=CLUSTER_README,
)
STEP_REDELIVERY_S = Setting(
    "PLATFORM_ASSETS_STEP_REDELIVERY_S",
    "seconds (6 h by default) after which a step whose worker was lost is delivered again. **It must exceed "
    "the longest step**: a step still running after it is delivered a second time",
    _whole(1),
    "{name}={value}: set a whole number of seconds, longer than the longest step",
    default=str(DEFAULT_REDELIVERY_S),
    doc=CLUSTER_README,
)
QUEUE_WAIT_S = Setting(
    "PLATFORM_ASSETS_QUEUE_WAIT_S",
    "seconds a step waits while no live worker serves its queue; then its run fails, naming the queue",
    _whole(1),
    f"{{name}}={{value}}: set a whole number of seconds (default {DEFAULT_QUEUE_WAIT_S})",
    default=str(DEFAULT_QUEUE_WAIT_S),
    doc=CLUSTER_README,
)

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        DEPLOYMENT,
        LAKE,
        APP_DB_URL,
        S3_ENDPOINT_URL,
        AWS_REGION,
        START_DATE,
        WORKSPACE,
        DVC_REMOTE,
        REGISTRY_GIT_REMOTE,
        IMAGE_SIZE,
        BACKGROUND_NICE,
        DVC,
        BROKER_URL,
        STEP_REDELIVERY_S,
        QUEUE_WAIT_S,
    )
}


# The accessors: each reads its variable now and checks it.


def deployment() -> str:
    """`local` (the project's directories), `production` or `cluster` (every location from the environment)."""
    return DEPLOYMENT.read()


def served() -> bool:
    """Production and cluster: every location comes from the environment, nothing from the project."""
    return deployment() in SERVED


def lake_root() -> str:
    return LAKE.read()


def app_db_url() -> str:
    return APP_DB_URL.read()


def s3_endpoint_url() -> str | None:
    return S3_ENDPOINT_URL.read()


def aws_region() -> str | None:
    return AWS_REGION.read()


def start_date() -> str:
    """Checked where it is read: one line naming it, never a traceback from Dagster's partitions."""
    return START_DATE.read()


def workspace_root() -> str:
    return WORKSPACE.read()


def dvc_remote() -> str:
    return DVC_REMOTE.read()


def registry_git_remote() -> str | None:
    return REGISTRY_GIT_REMOTE.read()


def image_size() -> int:
    """224 in production, 64 locally; a value that is not a whole number is named (the range is
    checked by ImagesResource)."""
    return IMAGE_SIZE.read()


def background_nice() -> int:
    """The nice value of background-lane runs; 0 leaves them at the priority they start with."""
    return BACKGROUND_NICE.read()


def dvc_path() -> str | None:
    """The `dvc` executable when set; else lib/registry.py looks beside Python, then on PATH."""
    return DVC.read()


def broker_url() -> str:
    """The Redis (or Valkey) server of the cluster's queues and step results, e.g.
    redis://broker-host:6379/0; required wherever it is asked for."""
    return BROKER_URL.read(required=True)


def queue_wait_seconds() -> int:
    """How long a step waits while no live worker serves its queue before its run fails (10 min)."""
    return QUEUE_WAIT_S.read()


def redelivery_seconds() -> int:
    """Seconds after which a step whose worker was lost is delivered to another (6 h)."""
    return STEP_REDELIVERY_S.read()


# The documents' settings tables, rendered from SETTINGS.

TABLE_HEADERS = {
    README: "| variable | default (local) | meaning |",
    CLUSTER_README: "| setting | default | what it is |",
}


def table(doc: str) -> list[str]:
    """The lines of `doc`'s settings table: its settings in declaration order."""
    rows = [f"| `{s.name}` | {s.table_default()} | {s.description} |" for s in SETTINGS.values() if s.doc == doc]
    return [TABLE_HEADERS[doc], "| --- | --- | --- |", *rows]


def table_span(lines: list[str], doc: str) -> tuple[int, int]:
    """Where `doc`'s settings table is among its `lines`: from its header to its last row."""
    start = lines.index(TABLE_HEADERS[doc])
    end = start
    while end + 1 < len(lines) and lines[end + 1].startswith("|"):
        end += 1
    return start, end + 1


def write_tables(root: Path = PROJECT_ROOT) -> None:
    """Rewrite every document's settings table from SETTINGS."""
    for doc in TABLE_HEADERS:
        path = root / doc
        lines = path.read_text().split("\n")
        start, end = table_span(lines, doc)
        lines[start:end] = table(doc)
        path.write_text("\n".join(lines))


if __name__ == "__main__":
    write_tables()
