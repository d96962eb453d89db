"""Generated bad input (hypothesis): random mixes of valid events and corrupted lines and
files. Every valid event is kept exactly once, every invalid line is quarantined with a
reason, and nothing crashes."""

import gzip
import json
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.lib.lake_store import LakeStore
from platform_assets_tests.support.helpers import transform_day

pytestmark = pytest.mark.slow

DAY = date(2026, 11, 1)
KINDS = (
    "valid",
    "valid_drift",
    "duplicate",
    "truncated",
    "invalid_utf8",
    "huge_garbage",
    "wrong_type",
    "future_ts",
    "ancient_ts",
    "missing_field",
    "not_object",
    "empty",
    "binary",
)


def valid(i: int, extra: dict | None = None) -> dict:
    return {
        "event_id": f"e{i}",
        "ts": f"2026-11-01T{i % 24:02d}:{i % 60:02d}:00Z",
        "event_type": "view",
        "user_id": i,
        "photo_id": i + 1,
        "client": "web",
        **(extra or {}),
    }


def dumps(record: dict, i: int) -> str:
    """Two in three records minified as the producer writes them (the fast path), the rest spaced."""
    return json.dumps(record, separators=(",", ":") if i % 3 else None)


def line(kind: str, i: int, draw_text: str) -> tuple[bytes, bool | None]:
    """(line bytes without newline, whether it is a valid event; None: a blank line, no record)."""
    if kind == "valid":
        return dumps(valid(i), i).encode(), True
    if kind == "valid_drift":  # a huge unknown field: schema drift, still a valid event
        return dumps(valid(i, {"note": draw_text * 2000}), i).encode(), True
    if kind == "truncated":
        text = dumps(valid(i), i)
        return text[: max(1, len(text) // 3)].encode(), False
    if kind == "invalid_utf8":
        return dumps(valid(i), i).encode()[:-2] + b'\xff\xfe"}', False
    if kind == "huge_garbage":
        return b"{" + (draw_text.encode() or b"x") * 40_000, False
    if kind == "wrong_type":
        return dumps(valid(i) | {"user_id": [str(i), 1.5, True, {"a": 1}][i % 4]}, i).encode(), False
    if kind == "future_ts":
        return dumps(valid(i) | {"ts": "2099-01-01T00:00:00Z"}, i).encode(), False
    if kind == "ancient_ts":
        return dumps(valid(i) | {"ts": "1970-01-01T00:00:00Z"}, i).encode(), False
    if kind == "missing_field":
        record = valid(i)
        del record[["event_id", "ts", "event_type", "user_id", "client"][i % 5]]
        return dumps(record, i).encode(), False
    if kind == "not_object":
        return [b"[1, 2]", b"42", b'"text"', b"null"][i % 4], False
    if kind == "empty":
        return [b"", b"   ", b"\t"][i % 3], None
    return bytes([0x80 + (i % 64), 0x00, 0xFF]) + draw_text.encode(), False  # binary


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=60),
    text=st.text(alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=8),
    files=st.integers(1, 3),
)
def test_every_valid_event_once_every_bad_line_quarantined(tmp_path_factory, kinds, text, files) -> None:
    root = tmp_path_factory.mktemp("props")
    store = LakeStore(str(root))
    valid_ids, bad_lines, blank_lines, per_file = set(), 0, 0, [[] for _ in range(files)]
    last_valid = None
    for i, kind in enumerate(kinds):
        if kind == "duplicate":
            if last_valid is None:
                continue
            data, ok = dumps(valid(last_valid), i).encode(), True  # the same event again, maybe in another file or form
        else:
            data, ok = line(kind, i, text)
            if ok:
                valid_ids.add(f"e{i}")
                last_valid = i
            elif ok is None:
                blank_lines += 1
            else:
                bad_lines += 1
        per_file[i % files].append(data)
    for n, lines in enumerate(per_file):
        store.write_bytes(
            f"logs/dt=2026-11-01/hour=00/part-{n}.jsonl.gz", gzip.compress(b"".join(x + b"\n" for x in lines))
        )
    keys = [f.key for f in store.list_files("logs")]
    result = transform_day(store, keys, DAY)
    assert sorted(result.events["event_id"].to_pylist()) == sorted(valid_ids)
    assert result.quarantine.num_rows == bad_lines
    assert result.stats.blank_lines == blank_lines  # counted, not quarantined
    assert all(r for r in result.quarantine["reason"].to_pylist())
    assert all(len(r) <= 65536 for r in result.quarantine["raw"].to_pylist())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 1.0), count=st.integers(1, 300))
def test_a_truncated_gzip_keeps_what_it_can_and_reports_the_rest(tmp_path_factory, cut, count) -> None:
    store = LakeStore(str(tmp_path_factory.mktemp("cut")))
    whole = gzip.compress(("\n".join(dumps(valid(i), i) for i in range(count)) + "\n").encode())
    store.write_bytes("logs/dt=2026-11-01/hour=00/part-0.jsonl.gz", whole[: int(len(whole) * cut)])
    result = transform_day(store, ["logs/dt=2026-11-01/hour=00/part-0.jsonl.gz"], DAY)
    kept = result.events["event_id"].to_pylist()
    assert set(kept) <= {f"e{i}" for i in range(count)} and len(kept) == len(set(kept))
    if cut < 1.0 and len(kept) < count:
        assert result.quarantine.num_rows >= 1  # the damage is reported, never silent
