"""What a trained model was made from: the manifest that maps it to one exact data version."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib.metadata import distributions
from pathlib import Path

import platform_assets
from platform_assets.lib.registry import RegistryError, dvc_executable

PACKAGES = ("dagster", "duckdb", "polars", "pyarrow", "torch", "dvc", "numpy", "sentence-transformers")


def code_version() -> str:
    """sha256 over every source file of the package: changes whenever the code does."""
    root = Path(platform_assets.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def git_revision(repo: Path) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def package_versions() -> dict[str, str]:
    """Versions of this environment's packages, and of the DVC that pins (its own environment)."""
    found = {d.metadata["Name"].lower(): d.version for d in distributions()}
    versions = {name: found.get(name, "absent") for name in PACKAGES}
    if versions["dvc"] == "absent":
        try:
            versions["dvc"] = subprocess.run(
                [dvc_executable(), "--version"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (RegistryError, OSError, subprocess.CalledProcessError):
            pass
    return versions


def model_id(shards: list[dict], code: str, seed: int, config: dict) -> str:
    """Identity from the inputs alone: the same data, code, seed and config give the same id."""
    blob = json.dumps(
        {"shards": [(s["day"], s["md5"]) for s in shards], "code": code, "seed": seed, "config": config}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
