"""A past model's exact data, restored and checked byte for byte: no torch, so `platform-assets
verify` starts in the time it takes to import the registry."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from platform_assets.lib.registry import (
    Damage,
    Registry,
    RegistryError,
    RegistryUnavailableError,
    RestoreError,
    model_dir,
    model_tag,
)


def _restored_manifest(registry: Registry, checkout: Path, mid: str) -> tuple[dict, list[Damage]]:
    """The model's manifest in a checkout of its tag, its directory verified (and what was healed)."""
    healed = registry.restore(checkout, [model_dir(mid)])
    return json.loads((checkout / model_dir(mid) / "manifest.json").read_text()), healed


def committed_manifest(registry: Registry, mid: str) -> dict:
    """The manifest as committed at the model's tag, restored and verified in a temporary checkout."""
    with registry.checkout(model_tag(mid)) as checkout:
        return _restored_manifest(registry, checkout, mid)[0]


@contextlib.contextmanager
def restored_model(registry: Registry, mid: str) -> Iterator[tuple[Path, dict, list[str]]]:
    """A temporary checkout of the model's tag holding its manifest and the exact shards it was
    trained on, each hashed against its DVC listing and the manifest's sha256 (healed from the
    remote where the cache is bad). Yields (checkout, manifest, what was healed)."""
    tag = model_tag(mid)
    try:
        registry.fetch()  # a model trained on another host: its tag
    except RegistryUnavailableError:
        if not registry.has_tag(tag):
            raise  # held here, the model restores without the git remote
    if not registry.has_tag(tag):
        raise RegistryError(
            f"no model {mid!r} in the data registry {registry.root} (no tag {tag}); "
            "`git -C <registry> tag --list 'popularity-model/*'` lists the models"
        )
    with registry.checkout(tag) as checkout:
        manifest, healed = _restored_manifest(registry, checkout, mid)
        healed += registry.restore(checkout, [s["path"] for s in manifest["shards"]])
        wrong = [
            str(checkout / s["path"] / f["name"])
            for s in manifest["shards"]
            for f in s["files"]
            if hashlib.sha256((checkout / s["path"] / f["name"]).read_bytes()).hexdigest() != f["sha256"]
        ]
        if wrong:
            raise RestoreError(
                f"restored shards differ from the manifest's sha256 although DVC's hashes match: {wrong}"
            )
        yield checkout, manifest, [str(d) for d in healed]


def verify_model(registry: Registry, mid: str) -> dict:
    """Restore a model's data version in a temporary checkout and check every byte."""
    with restored_model(registry, mid) as (_, manifest, healed):
        files = sum(len(s["files"]) for s in manifest["shards"])
        return {
            "model_id": mid,
            "tag": model_tag(mid),
            "partitions": len(manifest["shards"]),
            "files": files,
            "healed": healed,
            "verified": True,
        }


def verify_workspace(registry: Registry) -> dict:
    """Hash every pinned output in the workspace against its `.dvc` file, healing from the remote
    (holding the registry's lock: a pin in progress is never healed away under its writer)."""
    registry.ensure()
    with registry.locked():
        rels = registry.pinned()
        healed = registry.restore(registry.root, rels, checkout=False)
    return {"registry": str(registry.root), "outputs": len(rels), "healed": [str(d) for d in healed], "verified": True}
