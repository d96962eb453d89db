"""One rank of a small data-parallel training loop over `ShardDataset`, as the reader tests run
it: real processes, torch.distributed with gloo, DataLoader workers, killed mid-epoch.

Each step all-reduces the batch size, as DistributedDataParallel's gradient sync does: a rank
that ran out of samples first would leave the others hanging here. Every consumed batch is
appended to `rank<R>.jsonl`; at `--checkpoint-at` rank 0 writes the loader's state, and the job
keeps training until it is killed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.shards.reader import ShardDataset, ShardLoader, local_shards
from platform_assets.lib.shards.remote import ShardCache, remote_shards

LAYOUT = {"block_rows": 16, "window_blocks": 2, "span_shards": 2}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rendezvous", required=True)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--checkpoint-at", type=int, default=-1)
    parser.add_argument("--dirs", nargs="*", type=Path, default=[])
    parser.add_argument("--remote")
    parser.add_argument("--endpoint")
    parser.add_argument("--partitions", nargs="*", default=[])
    parser.add_argument("--cache")
    parser.add_argument("--cache-bytes", type=int, default=0)
    args = parser.parse_args()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", init_method=f"file://{args.rendezvous}", rank=rank, world_size=world)
    if args.remote:
        cache = ShardCache(Path(args.cache), args.cache_bytes)
        shards = remote_shards(LakeStore(args.remote, s3_endpoint_url=args.endpoint), args.partitions, cache)
    else:
        shards = local_shards(args.dirs)
    dataset = ShardDataset(shards, seed=7, **LAYOUT)
    loader = ShardLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    if args.resume:
        loader.load_state_dict(json.loads(args.resume.read_text()))
    consumed = 0
    with (args.out / f"rank{rank}.jsonl").open("a") as log:
        for step, batch in enumerate(loader):
            size = torch.tensor([len(batch["photo_id"])])
            dist.all_reduce(size)
            consumed += len(batch["photo_id"])
            log.write(json.dumps({"step": step, "ids": batch["photo_id"].tolist()}) + "\n")
            log.flush()
            if step == args.checkpoint_at:
                if rank == 0:
                    temp = args.out / ".state.json"
                    temp.write_text(json.dumps(loader.state_dict()))
                    temp.replace(args.out / "state.json")
                dist.barrier()
                (args.out / f"checkpointed-{rank}").touch()
            if args.checkpoint_at >= 0 and step >= args.checkpoint_at:
                time.sleep(0.2)  # training on, until the test kills the job
    counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([consumed]))
    if rank == 0:
        (args.out / "done.json").write_text(json.dumps({"per_rank": [int(c) for c in counts]}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
