"""Train on a window of pinned shard days, evaluate on the last, and reproduce a past model."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import yaml

from platform_assets.lib.dvc_pin import find_repo_root
from platform_assets.lib.model.manifest import code_version, git_revision, model_id, package_versions
from platform_assets.lib.model.train import TrainConfig, fit, holdout, spearman

MODELS = "models/popularity"


class ReproductionError(RuntimeError):
    """The restored data or the retrained metrics differ from the manifest."""


def pinned_days(workspace: Path) -> list[str]:
    """Days whose shard directory is pinned (has a .dvc file) and holds samples."""
    days = sorted(p.name.removesuffix(".dvc").removeprefix("dt=") for p in (workspace / "shards").glob("dt=*.dvc"))
    return [d for d in days if sum(s["samples"] for s in _index(workspace, d)) > 0]


def _index(workspace: Path, day: str) -> list[dict]:
    return json.loads((workspace / "shards" / f"dt={day}" / "index.json").read_text())["shards"]


def shard_entry(workspace: Path, day: str) -> dict:
    directory = workspace / "shards" / f"dt={day}"
    dvc_text = (directory.parent / f"dt={day}.dvc").read_text()
    index = _index(workspace, day)
    return {
        "day": day, "path": directory.relative_to(find_repo_root(workspace)).as_posix(),
        "md5": yaml.safe_load(dvc_text)["outs"][0]["md5"], "dvc_file": dvc_text,
        "files": [{"name": s["name"], "sha256": s["sha256"]} for s in index],
    }


def evaluate(workspace: Path, days: list[str], config: TrainConfig, truth: pa.Table | None) -> tuple[dict, dict]:
    """(model state_dict, metrics) for training on days[:-1] and holding out days[-1]."""
    dirs = [workspace / "shards" / f"dt={d}" for d in days]
    model = fit(dirs[:-1], config, use_embeddings=True)
    baseline = fit(dirs[:-1], config, use_embeddings=False)
    ids, pred, label = holdout(dirs[-1], model, True)
    _, base_pred, _ = holdout(dirs[-1], baseline, False)
    metrics = {
        "holdout_day": days[-1], "holdout_photos": int(len(ids)),
        "spearman_model": round(spearman(pred, label), 6), "spearman_features_only": round(spearman(base_pred, label), 6),
    }
    if truth is not None:  # the simulator's planted score: the ceiling a model could reach
        planted = dict(zip(truth["photo_id"].to_pylist(), truth["planted_score"].to_pylist()))
        metrics["spearman_planted_ground_truth"] = round(spearman(np.array([planted[i] for i in ids]), label), 6)
    return model.state_dict(), metrics


def train_model(workspace: Path, window_days: int, config: TrainConfig, truth: pa.Table | None) -> tuple[str, dict]:
    """Train on the latest `window_days` pinned days; write weights and manifest; return (id, manifest)."""
    days = pinned_days(workspace)[-window_days:]
    if len(days) < 2:
        raise ValueError(f"need shards of at least 2 pinned days (one to hold out), found {days}")
    shards = [shard_entry(workspace, d) for d in days]
    code = code_version()
    mid = model_id(shards, code, config.seed, asdict(config))
    state, metrics = evaluate(workspace, days, config, truth)
    buf = io.BytesIO()
    torch.save(state, buf)
    manifest = {
        "model_id": mid, "data_version": hashlib.sha256("".join(s["md5"] for s in shards).encode()).hexdigest()[:16],
        "shards": shards, "code_version": code, "git": git_revision(find_repo_root(workspace)),
        "seed": config.seed, "config": asdict(config), "packages": package_versions(), "metrics": metrics,
        "weights_sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
    }
    out = workspace / MODELS / mid
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.pt").write_bytes(buf.getvalue())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return mid, manifest


def restore_shards(workspace: Path, manifest: dict, remote: str | None = None) -> list[str]:
    """Put back the exact shard bytes a model was trained on, from the DVC cache (or remote),
    and verify every file against the manifest; returns the restored directories."""
    from dvc.repo import Repo

    root = find_repo_root(workspace)
    with contextlib.chdir(root), Repo(str(root)) as repo:  # DVC resolves targets from the working directory
        for entry in manifest["shards"]:
            (root / f"{entry['path']}.dvc").write_text(entry["dvc_file"])
            target = f"{entry['path']}.dvc"
            if remote:
                repo.pull(targets=[target], remote=remote, force=True)
            else:
                repo.checkout(targets=[target], force=True)
    bad = []
    for entry in manifest["shards"]:
        for f in entry["files"]:
            path = root / entry["path"] / f["name"]
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != f["sha256"]:
                bad.append(str(path))
    if bad:
        raise ReproductionError(f"restored shards do not match the manifest's hashes (corrupt DVC cache?): {bad}")
    return [e["path"] for e in manifest["shards"]]


def reproduce(workspace: Path, mid: str, truth: pa.Table | None, remote: str | None = None) -> dict:
    """Restore a model's shards, retrain with its seed and config, and compare the metrics."""
    manifest = json.loads((workspace / MODELS / mid / "manifest.json").read_text())
    restore_shards(workspace, manifest, remote)
    _, metrics = evaluate(workspace, [s["day"] for s in manifest["shards"]], TrainConfig(**manifest["config"]), truth)
    if metrics != manifest["metrics"]:
        raise ReproductionError(f"metrics differ: manifest {manifest['metrics']}, retrained {metrics}")
    return {"model_id": mid, "restored": [s["path"] for s in manifest["shards"]], "metrics": metrics}
