"""`platform-assets diff` on real pins (support/two_models.py): model A trains on days 1-2; a late
log file changes day 1 and day 3 is added; model B trains on days 1-3. The diff
names day 1 changed (sample counts checked against a plain read of both versions), day 3 added,
day 2 unchanged and never read; it reads the same from the remote with the cache gone; its shift
figures match a computation by hand; DVC's own `dvc metrics diff` agrees on the metrics."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.lib.diff.report import DataDiff, diff_versions
from platform_assets.lib.diff.shift import shift
from platform_assets.lib.registry import METRICS_FILE, Registry, cache_object, dvc_executable, object_key, shard_dir
from platform_assets.lib.shards.tabular import TABULAR
from platform_assets_tests.support.helpers import run_cli
from platform_assets_tests.support.two_models import CLI, DAYS, cli_env

pytestmark = pytest.mark.slow  # two models over real pins (conftest.py builds them once)


def ids(models) -> tuple[str, str]:
    return models["a"]["model_id"].value, models["b"]["model_id"].value


def samples_at(registry: Registry, rev: str, day: str) -> pa.Table:
    """A day's samples as `rev` pinned them, read the plain way: a checkout and pyarrow."""
    with registry.checkout(rev) as checkout:
        registry.restore(checkout, [shard_dir(day)])
        return pa.concat_tables(pq.read_table(p) for p in sorted((checkout / shard_dir(day)).glob("*.parquet")))


def rows(table: pa.Table) -> dict[tuple[int, int], dict]:
    return {(r["photo_id"], r["view"]): r for r in table.to_pylist()}


@pytest.fixture(scope="module")
def day_versions(two_models):
    registry, (a, b) = two_models["registry"], ids(two_models)
    return {
        "a1": samples_at(registry, f"popularity-model/{a}", DAYS[0]),
        "b1": samples_at(registry, f"popularity-model/{b}", DAYS[0]),
        "b3": samples_at(registry, f"popularity-model/{b}", DAYS[2]),
    }


def comparable(diff: DataDiff) -> dict:
    found = json.loads(diff.to_json())
    found.pop("seconds")
    return found


def test_the_diff_names_the_late_day_changed_the_new_day_added_and_nothing_else(two_models, day_versions) -> None:
    registry, (a, b) = two_models["registry"], ids(two_models)
    diff = diff_versions(registry, a, b)
    status = {p.day: p.status for p in diff.partitions}
    assert status == {DAYS[0]: "changed", DAYS[1]: "unchanged", DAYS[2]: "added"}
    changed = next(p for p in diff.partitions if p.day == DAYS[0])
    old, new = rows(day_versions["a1"]), rows(day_versions["b1"])
    assert (changed.samples_a, changed.samples_b) == (len(old), len(new))
    s = changed.samples
    both = old.keys() & new.keys()
    differ = {k: {c for c in old[k] if old[k][c] != new[k][c]} for k in both}
    differ = {k: cols for k, cols in differ.items() if cols}
    assert differ, "the late file changed no sample: the scenario tests nothing"
    assert (s.added_samples, s.removed_samples) == (len(new.keys() - old.keys()), len(old.keys() - new.keys()))
    assert (s.changed_samples, s.unchanged_samples) == (len(differ), len(both) - len(differ))
    by_photo: dict[int, set[str]] = {}
    for (photo, _), cols in differ.items():
        by_photo.setdefault(photo, set()).update(cols)
    assert {c.photo_id: set(c.columns) for c in s.changed_photos} == by_photo
    assert "features" in s.changed_columns  # late logins: author_logins_today
    assert s.added_photos == sorted({p for p, _ in new} - {p for p, _ in old})
    added = next(p for p in diff.partitions if p.day == DAYS[2])
    assert added.samples_b == day_versions["b3"].num_rows and added.samples_a is None
    metrics_a, metrics_b = two_models["a"]["metrics"].value, two_models["b"]["metrics"].value
    assert {m.metric: (m.a, m.b) for m in diff.metrics} == {
        k: (metrics_a.get(k), metrics_b.get(k)) for k in metrics_a | metrics_b
    }
    spearman = next(m for m in diff.metrics if m.metric == "spearman_model")
    assert spearman.change == pytest.approx(metrics_b["spearman_model"] - metrics_a["spearman_model"], abs=1e-6)


def per_photo(table: pa.Table, feature: str) -> list[float]:
    """One value per photo, by a plain loop: the label, or a feature from its first view that shows it."""
    seen: dict[int, float] = {}
    i = TABULAR.index(feature) if feature != "label" else None
    for r in sorted(table.to_pylist(), key=lambda r: (r["photo_id"], r["view"])):
        if r["photo_id"] in seen:
            continue
        if i is None:
            seen[r["photo_id"]] = r["label"]
        elif r["feature_mask"][i] > 0:
            seen[r["photo_id"]] = r["features"][i]
    return list(seen.values())


def quantile(sorted_values: list[float], q: float) -> float:
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def psi_by_hand(a: list[float], b: list[float]) -> float:
    ordered = sorted(a)
    edges = sorted({quantile(ordered, k / 10) for k in range(1, 10)})

    def shares(values: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for v in values:
            counts[sum(1 for e in edges if e < v)] += 1
        return [max(c / len(values), 1e-4) for c in counts]

    return sum((q - p) * math.log(q / p) for p, q in zip(shares(a), shares(b)))


def ks_by_hand(a: list[float], b: list[float]) -> float:
    """Walk both sorted samples together: the largest gap between their step functions."""
    a, b = sorted(a), sorted(b)
    i = j = 0
    gap = 0.0
    while i < len(a) or j < len(b):
        x = min(a[i] if i < len(a) else math.inf, b[j] if j < len(b) else math.inf)
        while i < len(a) and a[i] == x:
            i += 1
        while j < len(b) and b[j] == x:
            j += 1
        gap = max(gap, abs(i / len(a) - j / len(b)))
    return gap


def test_shift_figures_match_a_computation_by_hand(two_models, day_versions) -> None:
    registry, (a, b) = two_models["registry"], ids(two_models)
    found = {s.name: s for s in diff_versions(registry, a, b).shift}
    assert list(found) == ["label", *TABULAR]
    for name in ("label", "author_logins_today", "posted_hour_local"):
        before = per_photo(day_versions["a1"], name)  # A's version of the changed day
        after = per_photo(day_versions["b1"], name) + per_photo(day_versions["b3"], name)  # B's, and the added day
        got = found[name]
        assert (got.n_a, got.n_b) == (len(before), len(after))
        assert got.psi == pytest.approx(psi_by_hand(before, after), abs=2e-6), name
        assert got.ks == pytest.approx(ks_by_hand(before, after), abs=2e-6), name
        assert sum(got.counts_a) == len(before) and sum(got.counts_b) == len(after)


def test_shift_on_synthetic_samples_by_hand() -> None:
    """Discrete and continuous values, ties and an empty bin, against the loops above."""
    rng = np.random.default_rng(3)
    for a, b in (
        (rng.normal(size=400), rng.normal(0.3, 1.2, size=350)),
        (rng.integers(0, 5, 300).astype(float), rng.integers(0, 7, 280).astype(float)),
    ):
        got = shift("x", a, b)
        assert got.psi == pytest.approx(psi_by_hand(a.tolist(), b.tolist()), abs=2e-6)
        assert got.ks == pytest.approx(ks_by_hand(a.tolist(), b.tolist()), abs=2e-6)
    assert shift("x", np.zeros(0), np.ones(3)).psi is None


def test_dvc_metrics_diff_in_the_registry_agrees(two_models) -> None:
    registry, (a, b) = two_models["registry"], ids(two_models)
    dvc = dvc_executable()
    said = json.loads(
        run_cli(
            registry.root, dvc, "metrics", "diff", f"popularity-model/{a}", f"popularity-model/{b}", "--all", "--json"
        ).stdout
    )
    metrics = said[METRICS_FILE]
    for name in ("spearman_model", "spearman_features_only", "holdout_photos"):
        assert metrics[name]["old"] == two_models["a"]["metrics"].value[name]
        assert metrics[name]["new"] == two_models["b"]["metrics"].value[name]
    shown = run_cli(registry.root, dvc, "metrics", "show", "-A", "--json").stdout
    for meta in (two_models["a"], two_models["b"]):
        assert str(meta["metrics"].value["spearman_model"]) in shown
    tagged = registry.git("show", f"popularity-model/{b}:{METRICS_FILE}")
    assert json.loads(tagged)["model_id"] == b  # committed with the model's own pin


def test_each_model_shows_what_changed_since_the_previous_one(two_models) -> None:
    a_meta, b_meta = two_models["a"], two_models["b"]
    a, _ = ids(two_models)
    assert a_meta["previous_model"].value.startswith("none")
    assert b_meta["previous_model"].value == a
    assert (
        b_meta["partitions_changed"].value,
        b_meta["partitions_added"].value,
        b_meta["partitions_removed"].value,
    ) == (1, 1, 0)
    diff = diff_versions(two_models["registry"], *ids(two_models))
    assert b_meta["samples_changed"].value == diff.total("changed_samples") > 0
    assert b_meta["samples_added"].value == diff.total("added_samples")
    records = b_meta["features_moved"].value.records
    assert records and records[0].data["psi"] == max(s.psi for s in diff.shift if s.psi is not None)
    assert "spearman_model_change" in b_meta


def test_the_cli_prints_a_table_json_and_names_a_bad_id(two_models, tmp_path) -> None:
    registry, (a, b) = two_models["registry"], ids(two_models)
    table = run_cli(tmp_path, CLI, "diff", a, b, env=cli_env(two_models)).stdout
    print(table)
    lines = table.splitlines()
    assert f"{DAYS[0]}  changed" in table and f"{DAYS[2]}  added" in table
    assert not any(line.startswith(DAYS[1]) for line in lines)  # the unchanged day has no row
    assert any(line.startswith("spearman_model ") for line in lines)
    as_json = json.loads(run_cli(tmp_path, CLI, "diff", a, b, "--json", env=cli_env(two_models)).stdout)
    as_json.pop("seconds")
    assert as_json == comparable(diff_versions(registry, a, b))
    bad = run_cli(tmp_path, CLI, "diff", a, "nope", check=False, env=cli_env(two_models))
    assert bad.returncode == 2 and "'nope' is neither a model id nor a revision" in bad.stderr
    assert "tag --list 'popularity-model/*'" in bad.stderr and "Traceback" not in bad.stderr


def test_with_the_cache_gone_it_reads_the_remote_and_never_the_unchanged_day(two_models, tmp_path) -> None:
    registry, (a, b) = two_models["registry"], ids(two_models)
    expected = comparable(diff_versions(registry, a, b))
    cache = tmp_path / "cache"  # put back after: the other tests share the registry
    shutil.move(registry.cache, cache)
    remote = Path(registry.remote_url)
    day2 = registry.committed_md5(shard_dir(DAYS[1]), f"popularity-model/{b}")
    listing = json.loads((remote / object_key(day2)).read_bytes())
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for md5 in [day2, *(e["md5"] for e in listing)]:  # the unchanged day's bytes gone from the remote too
        shutil.move(remote / object_key(md5), hidden / md5)
    try:
        got = diff_versions(registry, a, b, shard_cache=tmp_path / "shard-cache")
        assert comparable(got) == expected
        assert any((tmp_path / "shard-cache").iterdir())  # streamed from the remote
        assert not cache_object(registry.cache, day2).exists()
    finally:
        for md5 in [day2, *(e["md5"] for e in listing)]:
            (remote / object_key(md5)).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(hidden / md5, remote / object_key(md5))
        shutil.rmtree(registry.cache, ignore_errors=True)
        shutil.move(cache, registry.cache)
