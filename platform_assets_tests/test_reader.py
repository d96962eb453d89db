"""The training reader: one order per (seed, epoch), equal ranks, exact resume at any world size
and worker count — in process, under torchdata's StatefulDataLoader, and as a real
torch.distributed job killed mid-epoch."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from torchdata.stateful_dataloader import StatefulDataLoader

from platform_assets.lib.shards.order import take_wrapped
from platform_assets.lib.shards.reader import ShardDataset, ShardLoader, local_shards
from platform_assets_tests.support.ddp_reader_job import LAYOUT
from platform_assets_tests.support.helpers import ROOT, synthetic_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two days of 301 samples in shards of 15 (ragged last shard, ragged last block)."""
    return local_shards(synthetic_shards(tmp_path_factory.mktemp("reader"), target_bytes=200_000))


def ids(batches) -> list[int]:
    return [i for b in batches for i in b["photo_id"].tolist()]


def epoch(shards, **kw) -> list[int]:
    return [s["photo_id"] for s in ShardDataset(shards, seed=7, **LAYOUT, **kw)]


def test_one_order_per_seed_and_epoch_whatever_the_workers(shards) -> None:
    full = epoch(shards)
    assert len(full) == len(set(full)) == 602
    assert full == epoch(shards) and full != epoch(shards, epoch=1) and sorted(full) == sorted(epoch(shards, epoch=1))
    for workers in (0, 2):  # worker w makes batches w, w+K, …: the loader yields the same order
        assert ids(ShardLoader(ShardDataset(shards, seed=7, **LAYOUT), batch_size=8, num_workers=workers)) == full
    for world in (2, 3):  # ranks take equal contiguous slices of that one order
        assert sum((epoch(shards, rank=r, world_size=world) for r in range(world)), [])[:602] == full


def test_samples_hold_their_stored_values(shards) -> None:
    """Blocks smaller than the row groups: each sample sliced out at the right offset."""
    stored = pa.concat_tables(pq.read_table(s.path) for s in shards).to_pylist()
    by_id = {row["photo_id"]: row for row in stored}
    for sample in ShardDataset(shards, seed=7, **LAYOUT):
        row = by_id[sample["photo_id"]]
        assert sample["image"].numpy().tobytes() == row["image"] and sample["view"] == row["view"]
        assert sample["label"].item() == pytest.approx(row["label"])
        for name in ("image_embedding", "title_embedding", "features", "feature_mask"):
            assert sample[name].tolist() == pytest.approx(row[name])


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world", [2, 3, 4, 5])
def test_every_rank_gets_the_same_count(shards, world: int, drop_last: bool) -> None:
    full = epoch(shards)
    ranks = [epoch(shards, rank=r, world_size=world, drop_last=drop_last) for r in range(world)]
    assert len({len(r) for r in ranks}) == 1
    flat = sum(ranks, [])
    if drop_last:
        assert flat == full[: len(flat)] and len(full) - len(flat) < world
    else:  # padded by repeating the first samples of the order
        assert flat == (full + full)[: len(flat)] and len(flat) - len(full) < world


@pytest.mark.parametrize(
    ("before", "after"),
    [((2, 2, 3), (3, 0, 4)), ((3, 0, 5), (2, 3, 8)), ((1, 2, 10), (4, 1, 2)), ((4, 1, 1), (1, 0, 16))],
)
def test_resume_at_another_world_size_and_worker_count(shards, before, after) -> None:
    """(world size, workers, batches consumed) before the stop; (world size, workers, batch size) after."""
    world, workers, steps = before
    consumed, states = [], []
    for rank in range(world):
        loader = ShardLoader(
            ShardDataset(shards, seed=7, rank=rank, world_size=world, **LAYOUT), 8, num_workers=workers
        )
        for step, batch in enumerate(loader):
            consumed += batch["photo_id"].tolist()
            if step == steps - 1:
                states.append(loader.state_dict())
                break
    assert all(s == states[0] for s in states)  # every rank computes the same global position
    state = json.loads(json.dumps(states[0]))  # as a checkpoint stores it
    world, workers, batch = after
    resumed = []
    for rank in range(world):
        dataset = ShardDataset(shards, seed=7, rank=rank, world_size=world, **LAYOUT)
        dataset.load_state_dict(state)
        resumed += ids(ShardLoader(dataset, batch, num_workers=workers))
    left = sum(b - a for a, b in state["remaining"])
    pad = -left % world
    assert not set(consumed) & set(resumed[: len(resumed) - pad])
    assert collections.Counter(consumed + resumed) == collections.Counter(epoch(shards) + resumed[len(resumed) - pad :])
    dataset = ShardDataset(shards, seed=7, **LAYOUT)
    dataset.load_state_dict(state)
    assert [s["photo_id"] for s in dataset] == [i for a, b in state["remaining"] for i in epoch(shards)[a:b]]


@pytest.mark.parametrize("workers", [0, 2])
def test_state_works_under_torchdata_stateful_dataloader(shards, workers: int) -> None:
    full = epoch(shards)
    loader = StatefulDataLoader(ShardDataset(shards, seed=7, batch_size=8, **LAYOUT), batch_size=8, num_workers=workers)
    seen = []
    for step, batch in enumerate(loader):
        seen += batch["photo_id"].tolist()
        if step == 9:
            state = loader.state_dict()
            break
    again = StatefulDataLoader(ShardDataset(shards, seed=7, batch_size=8, **LAYOUT), batch_size=8, num_workers=workers)
    again.load_state_dict(state)
    assert seen + ids(again) == full


def test_a_state_from_other_shards_or_settings_is_refused(shards) -> None:
    state = ShardDataset(shards, seed=7, **LAYOUT).state_dict()
    with pytest.raises(ValueError, match="its seed is 7"):
        ShardDataset(shards, seed=8, **LAYOUT).load_state_dict(state)
    with pytest.raises(ValueError, match="its samples is 602"):
        ShardDataset(shards[1:], seed=7, **LAYOUT).load_state_dict(state)


def test_persistent_workers_are_refused(shards) -> None:
    with pytest.raises(ValueError, match="persistent_workers=True"):
        ShardLoader(ShardDataset(shards), 8, num_workers=2, persistent_workers=True)


def test_padding_wraps_when_fewer_samples_than_ranks() -> None:
    assert take_wrapped([(5, 7)], 0, 5) == [(5, 7), (5, 7), (5, 6)]


# --- a real torch.distributed job, killed and resumed -------------------------------------


def start_job(out: Path, world: int, workers: int, source: list[str], *extra: str) -> list[subprocess.Popen]:
    out.mkdir(parents=True, exist_ok=True)
    rendezvous = out / "rendezvous"
    cmd = [sys.executable, "-m", "platform_assets_tests.support.ddp_reader_job", "--out", str(out)]
    cmd += ["--rendezvous", str(rendezvous), "--workers", str(workers), *source, *extra]
    env = {**os.environ, "WORLD_SIZE": str(world)}
    return [
        subprocess.Popen(cmd, cwd=ROOT, env={**env, "RANK": str(r)}, start_new_session=True, stderr=subprocess.PIPE)
        for r in range(world)
    ]


def wait(job: list[subprocess.Popen], timeout: float = 240) -> None:
    for proc in job:
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err.decode()[-3000:]


def kill_after_checkpoint(out: Path, job: list[subprocess.Popen], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(list(out.glob("checkpointed-*"))) < len(job):
        assert time.monotonic() < deadline and all(p.poll() is None for p in job), "no checkpoint"
        time.sleep(0.1)
    for proc in job:  # the whole process group: the rank and its DataLoader workers
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def logged(out: Path, until_step: int | None = None) -> dict[int, list[int]]:
    """Per rank, the samples it consumed (up to and including `until_step`)."""
    per_rank = {}
    for path in sorted(out.glob("rank*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        per_rank[int(path.stem[4:])] = [
            i for r in rows if until_step is None or r["step"] <= until_step for i in r["ids"]
        ]
    return per_rank


def assert_one_epoch_across_a_kill(tmp_path: Path, source: list[str], every_sample: list[int], first, then) -> None:
    """Job `first` = (world, workers) is killed after its checkpoint at step 3; job `then`
    resumes from it to the end of the epoch: together, each sample exactly once (and the
    resumed job's padding), every rank of each job the same count."""
    a, b = tmp_path / "a", tmp_path / "b"
    job = start_job(a, *first, source, "--checkpoint-at", "3")
    kill_after_checkpoint(a, job)
    before = logged(a, until_step=3)
    assert len({len(v) for v in before.values()}) == 1 and len(before) == first[0]
    state = json.loads((a / "state.json").read_text())
    wait(start_job(b, *then, source, "--resume", str(a / "state.json")))
    after = logged(b)
    assert len(set(json.loads((b / "done.json").read_text())["per_rank"])) == 1
    assert len({len(v) for v in after.values()}) == 1 and len(after) == then[0]
    consumed = sum(before.values(), [])
    resumed = sum(after.values(), [])
    left = sum(y - x for x, y in state["remaining"])
    assert len(consumed) == len(every_sample) - left and len(resumed) == left + (-left % then[0])
    assert set(consumed) | set(resumed) == set(every_sample) and not set(consumed) & set(resumed)
    assert len(set(resumed)) == left  # the only repeats are the padding


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [((2, 2), (3, 0)), ((3, 0), (2, 2))])
def test_distributed_job_killed_mid_epoch_resumes_at_another_size(shards, tmp_path, first, then) -> None:
    source = ["--dirs", *sorted({str(s.path.parent) for s in shards})]
    assert_one_epoch_across_a_kill(tmp_path, source, epoch(shards), first, then)
