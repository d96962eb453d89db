"""Data versions users can trust, end to end with real git, real DVC and a directory remote.

Data version 1 -> model A; a late log file and a new day -> version 2 -> model B
(support/two_models.py). Then every model comes
back by the README's plain recipe and by `reproduce`, in any order (A, B, A); after losing the
whole cache; after a byte flips in a cache object (detected, named, healed; and with the remote
gone too, a clear failure that leaves no bad bytes). The nightly model trains on the latest
data whatever the workspace holds (after `reproduce`, after a manual checkout) and refuses,
naming the partition, when the registry and Dagster's event log disagree."""

import hashlib
import json
import shutil
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.defs.models.assets import popularity_model
from platform_assets.lib.model.restore import verify_model, verify_workspace
from platform_assets.lib.model.run import StaleRegistryError, reproduce
from platform_assets.lib.registry import RestoreError, cache_object, dvc_executable, model_dir, shard_dir
from platform_assets_tests.support.helpers import run_cli
from platform_assets_tests.support.two_models import CLI, DAYS, MODEL, PINNED, cli_env, shard_bytes, train

pytestmark = pytest.mark.slow  # two models over real pins (conftest.py builds them once)


def manifest_of(registry, meta) -> dict:
    """The model's manifest as committed at its tag (the workspace copy may be gone)."""
    mid = meta["model_id"].value
    with registry.checkout(meta["registry_tag"].value) as checkout:
        registry.restore(checkout, [model_dir(mid)])
        return json.loads((checkout / model_dir(mid) / "manifest.json").read_text())


def expected_bytes(manifest: dict) -> dict[str, str]:
    return {
        f"{s['path']}/{f['name']}": f["sha256"]
        for s in manifest["shards"]
        for f in s["files"]
        if f["name"].endswith(".parquet")
    }


def test_every_pin_is_a_commit_and_every_model_a_tag(two_models) -> None:
    registry, a, b = two_models["registry"], two_models["a"], two_models["b"]
    assert two_models["v1"] != two_models["v2"] and a["model_id"].value != b["model_id"].value
    git = registry.git
    assert git("status", "--porcelain") == ""  # nothing half-committed, nothing left out
    versions = defaultdict(set)
    for meta in (a, b):
        for shard in manifest_of(registry, meta)["shards"]:
            versions[shard["day"]].add(shard["md5"])
    assert sorted(versions) == PINNED and any(len(v) == 2 for v in versions.values())  # version 2 changed a day
    for day, seen in versions.items():  # one commit per new version of a partition's .dvc file
        commits = len(git("log", "--format=%H", "--", f"{shard_dir(day)}.dvc").splitlines())
        assert commits == len(seen)
    for meta, version in ((a, "v1"), (b, "v2")):
        tag = meta["registry_tag"].value
        manifest = manifest_of(registry, meta)
        assert manifest["registry"]["tag"] == tag
        assert manifest["devices"] == {"training": "cpu", "shards": {s["day"]: "cpu" for s in manifest["shards"]}}
        assert git("rev-list", "-n1", tag) == meta["registry_commit"].value
        for shard in manifest["shards"]:  # the tagged commit holds exactly the .dvc files trained on
            assert git("show", f"{tag}:{shard['path']}.dvc") == shard["dvc_file"].strip()
        assert set(expected_bytes(manifest).items()) <= set(two_models[version].items())
        table = meta["shard_versions"].value  # the UI shows the data version as a table
        assert [r.data["partition"] for r in table.records] == [s["day"] for s in manifest["shards"]]
        assert {r.data["dvc_hash"] for r in table.records} == {s["md5"] for s in manifest["shards"]}
        assert all(r.data["tag"] == tag and r.data["shard_run"] for r in table.records)
    assert "in sync" in run_cli(registry.root, dvc_executable(), "status", "--cloud").stdout  # all on the remote


def test_the_readme_recipe_restores_any_model_in_any_order(two_models) -> None:
    """`git checkout <tag> -- shards && dvc checkout` in the registry, A, B, A; then back to the latest."""
    registry, root = two_models["registry"], two_models["registry"].root
    dvc = dvc_executable()
    for meta in (two_models["a"], two_models["b"], two_models["a"]):
        run_cli(root, "git", "checkout", meta["registry_tag"].value, "--", "shards")
        run_cli(root, dvc, "checkout")
        want = expected_bytes(manifest_of(registry, meta))
        got = shard_bytes(root)
        assert {k: got[k] for k in want} == want
    run_cli(root, "git", "checkout", "HEAD", "--", "shards")  # and back to the latest data
    run_cli(root, dvc, "checkout")
    assert shard_bytes(root) == two_models["v2"]
    assert registry.git("status", "--porcelain") == ""


def test_dvc_get_from_another_directory_at_a_tag(two_models, tmp_path) -> None:
    registry, a = two_models["registry"], two_models["a"]
    manifest = manifest_of(registry, a)
    shard = manifest["shards"][0]
    run_cli(
        tmp_path,
        dvc_executable(),
        "get",
        str(registry.root),
        shard["path"],
        "--rev",
        a["registry_tag"].value,
        "-o",
        "got",
    )
    for f in shard["files"]:
        assert hashlib.sha256((tmp_path / "got" / f["name"]).read_bytes()).hexdigest() == f["sha256"]


def test_reproduce_in_any_order_leaves_the_workspace_on_the_latest_data(two_models) -> None:
    registry, truth = two_models["registry"], two_models["truth"]
    for meta in (two_models["a"], two_models["b"], two_models["a"]):
        report = reproduce(registry, meta["model_id"].value, truth)
        assert report["metrics"] == meta["metrics"].value and report["healed"] == []
        assert shard_bytes(registry.root) == two_models["v2"]  # reproduce works in a temporary checkout
    # ... so the next nightly run finds the latest versions: the same data, code and seed as B,
    # so B's id, which the registry holds: nothing is trained or committed again
    head = registry.head()
    again = train(two_models["resources"], two_models["instance"])
    assert again["model_id"].value == two_models["b"]["model_id"].value and again["new_model"].value is False
    assert again["registry_commit"].value == two_models["b"]["registry_commit"].value
    assert registry.head() == head and again["metrics"].value == two_models["b"]["metrics"].value


def test_a_manual_checkout_in_the_workspace_does_not_change_what_trains(two_models) -> None:
    """The nightly model reads a verified snapshot of the registry's last commit, never the
    live workspace: after the README recipe left model A's shards there, a new model (another
    seed) still trains on the latest data (B's shards) and leaves the user's checkout alone."""
    registry = two_models["registry"]
    root = registry.root
    run_cli(root, "git", "checkout", two_models["a"]["registry_tag"].value, "--", "shards")
    run_cli(root, dvc_executable(), "checkout")
    mixed = shard_bytes(root)
    assert mixed != two_models["v2"]
    try:
        seed_1 = {
            "ops": {
                "models__popularity_model": {
                    "config": {**MODEL["ops"]["models__popularity_model"]["config"], "seed": 1}
                }
            }
        }
        result = dg.materialize(
            [popularity_model], resources=two_models["resources"], instance=two_models["instance"], run_config=seed_1
        )
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        assert meta["new_model"].value is True
        trained_on = expected_bytes(manifest_of(registry, meta))
        assert trained_on == expected_bytes(manifest_of(registry, two_models["b"]))  # B's data, not the workspace's
        assert set(trained_on.items()) <= set(two_models["v2"].items())
        assert shard_bytes(root) == mixed
    finally:
        run_cli(root, "git", "checkout", "HEAD", "--", "shards")
        run_cli(root, dvc_executable(), "checkout")
    assert shard_bytes(root) == two_models["v2"]


def test_losing_the_whole_cache_restores_both_models_from_the_remote(two_models) -> None:
    registry, truth = two_models["registry"], two_models["truth"]
    shutil.rmtree(registry.cache)
    for meta in (two_models["b"], two_models["a"]):
        assert reproduce(registry, meta["model_id"].value, truth)["metrics"] == meta["metrics"].value
    root = registry.root  # and by the plain recipe: `dvc pull --force` instead of `dvc checkout`
    shutil.rmtree(registry.cache)  # (--force: DVC guards workspace files it has no cached copy of; the remote has)
    run_cli(root, "git", "checkout", two_models["a"]["registry_tag"].value, "--", "shards")
    run_cli(root, dvc_executable(), "pull", "--force")
    want = expected_bytes(manifest_of(registry, two_models["a"]))
    assert {k: shard_bytes(root)[k] for k in want} == want
    run_cli(root, "git", "checkout", "HEAD", "--", "shards")
    run_cli(root, dvc_executable(), "pull")  # the latest version's objects come back from the remote too
    assert shard_bytes(root) == two_models["v2"]


def _flip_a_byte_in_a_cache_object(registry, manifest: dict) -> tuple[Path, str]:
    """Bit rot in the cache object of the manifest's first shard file."""
    shard = manifest["shards"][0]
    name = next(f["name"] for f in shard["files"] if f["name"].endswith(".parquet"))
    listing = json.loads(cache_object(registry.cache, shard["md5"]).read_bytes())
    md5 = next(e["md5"] for e in listing if e["relpath"] == name)
    obj = cache_object(registry.cache, md5)
    flip_a_byte(obj)
    return obj, f"{shard['path']}/{name}"


def flip_a_byte(path: Path) -> None:
    """One bit changed in place, in the middle of the file."""
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0x01]))


def test_a_flipped_byte_in_the_cache_is_detected_named_and_healed(two_models) -> None:
    registry, a = two_models["registry"], two_models["a"]
    manifest = manifest_of(registry, a)
    obj, file = _flip_a_byte_in_a_cache_object(registry, manifest)
    done = run_cli(registry.root, CLI, "verify", a["model_id"].value, check=False, env=cli_env(two_models))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert any(str(obj) in h and file in h for h in report["healed"])  # names the file and the cache object
    assert hashlib.md5(obj.read_bytes()).hexdigest() == obj.parent.name + obj.name  # healed from the remote
    assert verify_model(registry, a["model_id"].value)["healed"] == []


def test_with_no_good_copy_anywhere_the_restore_fails_clearly_and_leaves_no_bad_bytes(two_models) -> None:
    registry, a = two_models["registry"], two_models["a"]
    manifest = manifest_of(registry, a)
    remote = Path(registry.remote_url)
    hidden = remote.with_name("dvc-remote-gone")
    remote.rename(hidden)
    try:
        obj, file = _flip_a_byte_in_a_cache_object(registry, manifest)
        with pytest.raises(RestoreError) as failed:
            verify_model(registry, a["model_id"].value)
        said = str(failed.value)
        assert file in said and str(obj) in said and "corrupt in the cache (removed); absent on the remote" in said
        assert not obj.exists()  # the bad object is gone: no later checkout can use it
        done = run_cli(registry.root, CLI, "reproduce", a["model_id"].value, check=False, env=cli_env(two_models))
        assert done.returncode == 2 and "Traceback" not in done.stderr and "no good copy" in done.stderr
        assert shard_bytes(registry.root) == two_models["v2"]  # the workspace is as it was
    finally:
        hidden.rename(remote)
    assert verify_model(registry, a["model_id"].value)["verified"]


def test_verify_heals_the_workspace_in_place(two_models) -> None:
    registry = two_models["registry"]
    shard = next(iter(sorted(two_models["v2"])))
    flip_a_byte(registry.root / shard)  # an in-place write into a workspace file: the cache holds a copy
    report = verify_workspace(registry)
    assert any(shard in h for h in report["healed"])
    assert shard_bytes(registry.root) == two_models["v2"]


def test_the_cli_runs_against_the_registry_from_the_environment(two_models, tmp_path) -> None:
    done = run_cli(tmp_path, CLI, "verify", env=cli_env(two_models))
    models = two_models["registry"].git("tag", "--list", "popularity-model/*").split()
    assert len(models) >= 2 and json.loads(done.stdout)["outputs"] == len(PINNED) + len(models)  # every pin
    missing = run_cli(tmp_path, CLI, "verify", "0123456789ab", check=False, env=cli_env(two_models))
    assert missing.returncode == 2 and "no model '0123456789ab'" in missing.stderr and "Traceback" not in missing.stderr


def test_a_registry_that_disagrees_with_the_event_log_is_refused_naming_the_partition(two_models) -> None:
    """A partition pinned outside Dagster (so the event log's latest is not what the registry
    holds) stops training with the partition's name; re-pinning the latest bytes clears it."""
    registry, day = two_models["registry"], DAYS[0]
    rel = shard_dir(day)
    original = registry.committed_md5(rel)
    index = registry.root / rel / "index.json"
    saved = index.read_bytes()
    index.chmod(0o644)
    index.write_bytes(saved + b"\n")
    registry.pin(rel, "pinned by hand, outside Dagster")
    try:
        result = dg.materialize(
            [popularity_model],
            resources=two_models["resources"],
            instance=two_models["instance"],
            run_config=MODEL,
            raise_on_error=False,
        )
        assert not result.success
        error = str(result.failure_data_for_node("models__popularity_model").error)
        assert StaleRegistryError.__name__ in error and day in error and original in error
    finally:
        index.write_bytes(saved)
        registry.pin(rel, "the latest materialization again")
    assert registry.committed_md5(rel) == original
