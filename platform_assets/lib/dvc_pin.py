"""Pin a directory of shards with DVC: hash it, store it in the cache, push it to the remote.

The DVC hash of the directory (its `.dvc` file's md5, `<hash>.dir`) is what the asset reports
as its Dagster data version, so Dagster's staleness and `dvc status` describe the same bytes.
DVC takes a repository lock for each command; pins from parallel runs on one machine are
serialized by a file lock here instead of failing on DVC's.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock

from platform_assets.lib.lake_store import TEMP_PREFIX

LOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Pin:
    path: str  # relative to the repository root
    dvc_file: str
    md5: str  # DVC's directory hash, "<md5>.dir"
    files: int
    bytes: int
    seconds: float


def find_repo_root(path: Path) -> Path:
    """The nearest enclosing directory with a `.dvc` folder: the workspace must be inside a DVC repo."""
    for candidate in [path, *path.parents]:
        if (candidate / ".dvc").is_dir():
            return candidate
    raise ValueError(f"{path} is not inside a DVC repository: run `dvc init` in the project (or point "
                     "PLATFORM_ASSETS_WORKSPACE at a directory inside one)")


def _ignore_temp_files(root: Path) -> None:
    """A writer killed mid-file leaves a hidden temporary file; DVC must not hash or push it."""
    path = root / ".dvcignore"
    lines = path.read_text().splitlines() if path.exists() else []
    if f"{TEMP_PREFIX}*" not in lines:
        path.write_text("\n".join([*lines, f"{TEMP_PREFIX}*"]) + "\n")


def pin(directory: Path, remote: str | None = None) -> Pin:
    """`dvc add` the directory (hashing only new or changed files: DVC's state cache knows the
    rest) and, when a remote is configured, `dvc push` it."""
    from dvc.repo import Repo

    directory = directory.resolve()
    root = find_repo_root(directory)
    rel = directory.relative_to(root).as_posix()
    started = time.perf_counter()
    with FileLock(str(root / ".dvc" / "tmp" / "platform-assets-pin.lock"), timeout=LOCK_TIMEOUT_S):
        _ignore_temp_files(root)
        with contextlib.chdir(root), Repo(str(root)) as repo:  # DVC resolves targets from the working directory
            repo.add([rel])
            if remote:
                repo.push(targets=[f"{rel}.dvc"], remote=remote)
    out = yaml.safe_load((root / f"{rel}.dvc").read_text())["outs"][0]
    return Pin(rel, f"{rel}.dvc", out["md5"], out.get("nfiles", 0), out.get("size", 0), time.perf_counter() - started)
