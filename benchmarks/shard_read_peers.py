"""The peers of the shard-reading benchmark, run in `benchmarks/.venv-peers` (torch 2.14.1 +
torchvision, which MosaicML Streaming imports, webdataset, mosaicml-streaming). Each writes
the same samples in its own format with its own writer, then reads them back."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.common import peak_rss_mb

FIELDS = ("image_embedding", "title_embedding", "features", "feature_mask")


def columns(source: Path) -> dict:
    table = pq.read_table(source)
    n = table.num_rows
    out = {name: table[name].combine_chunks().values.to_numpy().reshape(n, -1) for name in FIELDS}
    out["image"] = table["image"].to_pylist()
    out["label"] = table["label"].to_numpy()
    out["photo_id"] = table["photo_id"].to_numpy()
    return out


def write(impl: str, source: Path, out: Path) -> None:
    cols = columns(source)
    n = len(cols["image"])
    out.mkdir(parents=True, exist_ok=True)
    if impl == "webdataset":
        import webdataset as wds

        with wds.ShardWriter(str(out / "shard-%05d.tar"), maxsize=128 * 2**20) as sink:
            for i in range(n):
                sink.write(
                    {
                        "__key__": f"{i:08d}",
                        "image.bin": cols["image"][i],
                        **{f"{k}.bin": cols[k][i].astype(np.float32).tobytes() for k in FIELDS},
                        "label.bin": np.float32(cols["label"][i]).tobytes(),
                    }
                )
    else:
        from streaming import MDSWriter

        spec = {"image": "bytes", "label": "float32", **{k: f"ndarray:float32:{cols[k].shape[1]}" for k in FIELDS}}
        with MDSWriter(out=str(out), columns=spec, size_limit=128 * 2**20) as sink:
            for i in range(n):
                sink.write(
                    {
                        "image": cols["image"][i],
                        "label": float(cols["label"][i]),
                        **{k: cols[k][i].astype(np.float32) for k in FIELDS},
                    }
                )


def read(impl: str, out: Path, shuffle_buffer: int, remote: str | None = None) -> int:
    """One epoch; with `remote` (MDS only), streamed from that S3 URL into `out` as its cache."""
    import torch

    count = 0
    if impl == "webdataset":
        import webdataset as wds

        def decode(s: dict) -> dict:
            return {
                "image": torch.frombuffer(bytearray(s["image.bin"]), dtype=torch.uint8).view(3, 64, 64),
                **{k: torch.frombuffer(bytearray(s[f"{k}.bin"]), dtype=torch.float32) for k in FIELDS},
                "label": torch.frombuffer(bytearray(s["label.bin"]), dtype=torch.float32),
            }

        urls = sorted(str(p) for p in out.glob("*.tar"))
        for _ in wds.WebDataset(urls, shardshuffle=False, empty_check=False).shuffle(shuffle_buffer).map(decode):
            count += 1
    else:
        from streaming import StreamingDataset

        where = {"remote": remote, "local": str(out)} if remote else {"local": str(out)}
        for s in StreamingDataset(**where, shuffle=True, shuffle_seed=0, batch_size=1):
            torch.from_numpy(np.frombuffer(s["image"], np.uint8).reshape(3, 64, 64).copy())
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["webdataset", "mds"], required=True)
    parser.add_argument("--source", required=True, help="one Parquet file holding the samples")
    parser.add_argument("--out", required=True)
    parser.add_argument("--shuffle-buffer", type=int, default=2048)
    parser.add_argument("--remote", help="stream the MDS shards from this s3:// URL into --out (S3_ENDPOINT_URL set)")
    args = parser.parse_args()
    out = Path(args.out)
    if not out.exists() and not args.remote:
        write(args.impl, Path(args.source), out)
    import torch  # noqa: F401  (imports are not part of reading)

    if args.impl == "webdataset":
        import webdataset  # noqa: F401
    else:
        import streaming  # noqa: F401
    t = time.perf_counter()
    n = read(args.impl, out, args.shuffle_buffer, args.remote)
    print(json.dumps({"samples": n, "samples_per_second": n / (time.perf_counter() - t), "peak_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
