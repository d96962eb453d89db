"""The two sides of a diff: a model (its tag, the days of its window, its metrics) or any
registry revision (every shard partition pinned there), read from git without a checkout."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

import yaml

from platform_assets.lib.diff.objects import ObjectSource
from platform_assets.lib.registry import SHARDS, Registry, RegistryError, RegistryUnavailableError, model_dir, model_tag

MODEL_TAGS = "popularity-model/"


@dataclass(frozen=True)
class DataVersion:
    name: str  # as asked for
    rev: str  # the git revision read (a model's tag)
    commit: str
    model_id: str | None
    partitions: dict[str, str]  # day -> DVC hash of its shard directory
    metrics: dict = field(default_factory=dict)


def _cat_files(registry: Registry, rev: str, paths: list[str]) -> dict[str, str]:
    """The text of each path at `rev`, in one `git cat-file --batch` (one process for any number)."""
    if not paths:
        return {}
    done = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=registry.root,
        input="".join(f"{rev}:{p}\n" for p in paths).encode(),
        capture_output=True,
        check=True,
    )
    out, texts, at = done.stdout, {}, 0
    for path in paths:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if header[-1] == b"missing":
            raise RegistryError(f"{path} is not in {rev} of the data registry {registry.root}")
        size = int(header[2])
        texts[path] = out[end + 1 : end + 1 + size].decode()
        at = end + 1 + size + 1
    return texts


def pinned_partitions(registry: Registry, rev: str, days: list[str] | None = None) -> dict[str, str]:
    """day -> DVC hash of `shards/dt=<day>` as the `.dvc` files at `rev` record it (every day
    pinned there, or `days`)."""
    if days is None:
        listed = registry.git("ls-tree", "--name-only", f"{rev}:{SHARDS}").splitlines()
        days = [
            n.removeprefix("dt=").removesuffix(".dvc") for n in listed if n.startswith("dt=") and n.endswith(".dvc")
        ]
    paths = {day: f"{SHARDS}/dt={day}.dvc" for day in days}
    texts = _cat_files(registry, rev, list(paths.values()))
    return {day: yaml.safe_load(texts[path])["outs"][0]["md5"] for day, path in sorted(paths.items())}


def model_manifest(registry: Registry, source: ObjectSource, mid: str) -> dict:
    """A model's manifest from its tag's `.dvc` file and the bytes it names (cache or remote)."""
    rel = f"{model_dir(mid)}.dvc"
    md5 = yaml.safe_load(_cat_files(registry, model_tag(mid), [rel])[rel])["outs"][0]["md5"]
    listing = {e["relpath"]: e["md5"] for e in json.loads(source.read(md5, f"model {mid}'s listing"))}
    return json.loads(source.read(listing["manifest.json"], f"model {mid}'s manifest"))


def fetch_tags(registry: Registry) -> None:
    """Other hosts' models (their tags); an unreachable git remote is fine for what is here."""
    try:
        registry.fetch()
    except RegistryUnavailableError:
        pass


def resolve(registry: Registry, source: ObjectSource, name: str) -> DataVersion:
    """A model id, a model tag, or any commit, branch or tag of the registry."""
    mid = name.removeprefix(MODEL_TAGS)
    if not registry.has_tag(model_tag(mid)):
        mid = None
    rev = model_tag(mid) if mid else name
    commit = registry.git("rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
    if not commit:
        raise RegistryError(
            f"{name!r} is neither a model id nor a revision of the data registry {registry.root}; "
            f"`git -C {registry.root} tag --list '{MODEL_TAGS}*'` lists the models"
        )
    if mid is None:
        return DataVersion(name, rev, commit, None, pinned_partitions(registry, rev))
    manifest = model_manifest(registry, source, mid)
    days = [s["day"] for s in manifest["shards"]]
    return DataVersion(name, rev, commit, mid, pinned_partitions(registry, rev, days), manifest["metrics"])


def previous_model(registry: Registry, mid: str) -> str | None:
    """The latest model tagged before `mid` in the registry's history (None: `mid` is the first)."""
    found = registry.git(
        "describe", "--tags", "--abbrev=0", "--match", f"{MODEL_TAGS}*", f"{model_tag(mid)}^", check=False
    )
    return found.removeprefix(MODEL_TAGS) or None
