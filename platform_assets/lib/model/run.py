"""Train on a window of pinned shard days, evaluate on the last, and reproduce a past model."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

import platform_assets
from platform_assets.lib.model.manifest import code_version, git_revision, model_id, package_versions
from platform_assets.lib.model.restore import committed_manifest, restored_model
from platform_assets.lib.model.train import TrainConfig, fit, holdout, spearman
from platform_assets.lib.registry import (
    Pin,
    Registry,
    RegistryError,
    model_dir,
    model_tag,
    pinned_md5,
    shard_dir,
)


class ReproductionError(RuntimeError):
    """The retrained metrics differ from the manifest."""


class StaleRegistryError(RegistryError):
    """The registry's last commit does not hold the versions a training run was asked to use."""


def _index(workspace: Path, day: str) -> list[dict]:
    return json.loads((workspace / shard_dir(day) / "index.json").read_text())["shards"]


def shard_entry(workspace: Path, day: str) -> dict:
    rel = shard_dir(day)
    return {
        "day": day,
        "path": rel,
        "md5": pinned_md5(workspace, rel),
        "dvc_file": (workspace / f"{rel}.dvc").read_text(),
        "files": [{"name": s["name"], "sha256": s["sha256"]} for s in _index(workspace, day)],
    }


def evaluate(workspace: Path, days: list[str], config: TrainConfig, truth: pa.Table | None) -> tuple[dict, dict]:
    """(model state_dict, metrics) for training on days[:-1] and holding out days[-1]."""
    dirs = [workspace / shard_dir(d) for d in days]
    model = fit(dirs[:-1], config, use_embeddings=True)
    baseline = fit(dirs[:-1], config, use_embeddings=False)
    ids, pred, label = holdout(dirs[-1], model, True)
    _, base_pred, _ = holdout(dirs[-1], baseline, False)
    metrics = {
        "holdout_day": days[-1],
        "holdout_photos": int(len(ids)),
        "spearman_model": round(spearman(pred, label), 6),
        "spearman_features_only": round(spearman(base_pred, label), 6),
    }
    if truth is not None:  # the simulator's planted score: the ceiling a model could reach
        planted = dict(zip(truth["photo_id"].to_pylist(), truth["planted_score"].to_pylist()))
        metrics["spearman_planted_ground_truth"] = round(spearman(np.array([planted[i] for i in ids]), label), 6)
    return model.state_dict(), metrics


@dataclass(frozen=True)
class TrainedModel:
    model_id: str
    manifest: dict
    pin: Pin  # the model directory's pin: its DVC hash and the commit its tag names
    new: bool  # False: the registry already held this id (same data, code, seed, config): nothing committed


def train_model(
    registry: Registry,
    versions: dict[str, str],
    config: TrainConfig,
    truth: pa.Table | None,
    shard_devices: dict[str, str],
) -> TrainedModel:
    """Train on the days of `versions` (day -> DVC hash of its latest materialization; the last
    day is the holdout), write weights and manifest into the registry, pin and tag them. The
    manifest records the devices (`shard_devices`: day -> where its shards were written).

    The registry is first brought up to date with its git remote (other hosts' pins). The id
    depends on the inputs alone, so an id the registry already holds is not trained or
    committed again. Training reads a snapshot: a temporary checkout of the registry's last
    commit, every byte verified against DVC's records (healed from the remote), never the live
    workspace, which a manual `git checkout` of an old model or a shard run in progress may
    have mixed. That commit must hold exactly the asked-for versions, and the remote must have them."""
    days = sorted(versions)
    if len(days) < 2:
        raise ValueError(f"need shards of at least 2 days with samples (one to hold out), found {days}")
    rels = [shard_dir(day) for day in days]
    registry.sync()
    head = registry.head()
    committed = {day: registry.committed_md5(rel, head) for day, rel in zip(days, rels)}
    stale = [
        f"{day} (registry {committed[day]}, latest materialization {versions[day]})"
        for day in days
        if committed[day] != versions[day]
    ]
    if stale:
        raise StaleRegistryError(
            f"the data registry's last commit (after fetching its git remote, if any) does not hold "
            f"the latest materialization of {stale}: materialize those shards partitions again, then train"
        )
    code = code_version()
    mid = model_id([{"day": d, "md5": versions[d]} for d in days], code, config.seed, asdict(config))
    if registry.has_tag(model_tag(mid)):
        return TrainedModel(
            mid, committed_manifest(registry, mid), registry.pin_at(model_dir(mid), model_tag(mid)), False
        )
    with registry.checkout(head) as snapshot:
        registry.restore(snapshot, rels)
        if missing := registry.missing_on_remote(rels, snapshot):
            raise RegistryError(
                f"the DVC remote {registry.remote_url} lacks {missing}: a model is only trained on "
                "data that can be restored; rerun their shard partitions to push them"
            )
        shards = [shard_entry(snapshot, d) for d in days]
        state, metrics = evaluate(snapshot, days, config, truth)
    buf = io.BytesIO()
    torch.save(state, buf)
    manifest = {
        "model_id": mid,
        "data_version": hashlib.sha256("".join(s["md5"] for s in shards).encode()).hexdigest()[:16],
        "shards": shards,
        "code_version": code,
        "source_git": git_revision(Path(platform_assets.__file__).parent),
        "registry": {"tag": model_tag(mid), "data_commit": head, "dvc_remote": registry.remote_url},
        "seed": config.seed,
        "devices": {"training": "cpu", "shards": shard_devices},
        "config": asdict(config),
        "packages": package_versions(),
        "metrics": metrics,
        "weights_sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
    }
    out = registry.root / model_dir(mid)
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.pt").write_bytes(buf.getvalue())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    pin = registry.pin_model(
        model_dir(mid),
        model_tag(mid),
        f"model {mid}: {metrics}",
        {rel: versions[d] for d, rel in zip(days, rels)},
        {"model_id": mid, **metrics},  # the registry's DVC metrics, committed with the pin
    )
    return TrainedModel(mid, manifest, pin, True)


def reproduce(registry: Registry, mid: str, truth: pa.Table | None) -> dict:
    """Restore a model's shards (in a temporary checkout: the workspace keeps the latest data),
    retrain with its seed and config, and compare the metrics."""
    with restored_model(registry, mid) as (checkout, manifest, healed):
        days = [s["day"] for s in manifest["shards"]]
        _, metrics = evaluate(checkout, days, TrainConfig(**manifest["config"]), truth)
    if metrics != manifest["metrics"]:
        raise ReproductionError(f"metrics differ: manifest {manifest['metrics']}, retrained {metrics}")
    return {
        "model_id": mid,
        "tag": model_tag(mid),
        "restored": [s["path"] for s in manifest["shards"]],
        "healed": healed,
        "metrics": metrics,
    }
