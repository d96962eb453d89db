"""The events transform on hand-written lines: one reason per bad line, every valid event once."""

import gzip
import json
from datetime import UTC, date, datetime

import pytest

from platform_assets.lib.lake_layout import list_log_days
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.staging.events import transform_events, write_events
from platform_assets.lib.staging.log_lines import read_log_lines
from platform_assets_tests.support.helpers import make_lake, transform_day

DAY = date(2026, 11, 1)


def ev(event_id: str = "e1", ts: str = "2026-11-01T10:00:00.000Z", compact: bool = True, **kw) -> str:
    """A record as the producer writes it (minified: the fast path) or spaced (judged field by field)."""
    record = {"event_id": event_id, "ts": ts, "event_type": "view", "user_id": 1, "photo_id": 2, "client": "ios"}
    record.update(kw)
    return json.dumps({k: v for k, v in record.items() if v is not ...}, separators=(",", ":") if compact else None)


def run(tmp_path, files: dict[str, list[str] | bytes]):
    store = LakeStore(str(tmp_path))
    for name, lines in files.items():
        data = lines if isinstance(lines, bytes) else gzip.compress(("\n".join(lines) + "\n").encode())
        store.write_bytes(f"logs/dt=2026-11-01/hour=10/{name}.jsonl.gz", data)
    keys = [f.key for f in store.list_files("logs")]
    return transform_day(store, keys, DAY)


BAD_LINES = [
    ('{"event_id": "e1", "ts"', "malformed_json"),
    ("[1, 2]", "not_an_object"),
    (ev(user_id=...), "missing_field: user_id"),
    (ev(event_id=None), "missing_field: event_id"),
    (ev(user_id="user-1"), "wrong_type: user_id must be an integer, got string"),
    (ev(ts=1700000000), "wrong_type: ts must be an ISO-8601 string, got integer"),
    (ev(event_type=42), "wrong_type: event_type must be a string, got integer"),
    (ev(photo_id="x"), "wrong_type: photo_id must be an integer, got string"),
    (ev(user_id=1.5), "wrong_type: user_id must be an integer, got number"),
    (ev(user_id=True), "wrong_type: user_id must be an integer, got boolean"),
    (ev(event_id={"a": 1}), "wrong_type: event_id must be a non-empty string, got object"),
    (ev(ts="yesterday"), "bad_timestamp: yesterday"),
    (ev(event_type="teleport"), "unknown_event_type: teleport"),
    (ev(photo_id=None), "missing_field: photo_id (required for view)"),
    (ev(ts="2026-11-02T00:00:00Z"), "timestamp_outside_partition: 2026-11-02T00:00:00Z"),
    (ev(ts="1970-01-01T00:00:00Z"), "timestamp_outside_partition: 1970-01-01T00:00:00Z"),
    (ev(event_id=""), "missing_event_id: empty or whitespace only"),
    (ev(event_id=" \t "), "missing_event_id: empty or whitespace only"),
    (ev(ts="2026-11-01"), "bad_timestamp: 2026-11-01"),  # a date is not a time
    (ev(ts="2026-10-31T24:00:00Z"), "bad_timestamp: 2026-10-31T24:00:00Z"),  # not 11-01 00:00: hours are 00-23
]


@pytest.mark.parametrize("compact", [True, False], ids=["minified", "spaced"])
@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_each_bad_line_is_quarantined_with_its_reason(tmp_path, line: str, reason: str, compact: bool) -> None:
    if not compact and line.startswith("{"):
        line = json.dumps(json.loads(line)) if reason != "malformed_json" else line
    result = run(tmp_path, {"part-00": [ev("good"), line]})
    assert result.events["event_id"].to_pylist() == ["good"]
    q = result.quarantine.to_pylist()
    assert [(r["reason"], r["line_number"], r["source_file"]) for r in q] == [
        (reason, 2, "logs/dt=2026-11-01/hour=10/part-00.jsonl.gz")
    ]
    assert q[0]["raw"] == line


@pytest.mark.parametrize(
    "line",
    [
        ev('e\\"1'),  # an escaped quote in a string
        ev(compact=False),
        '{"ts":"2026-11-01T10:00:00.000Z","event_id":"e1","event_type":"view","user_id":1,"photo_id":2,"client":"ios"}',
        ev(event_type="login", photo_id=...),  # a login without photo_id
        ev(event_type="login", photo_id=None),
        ev(user_id=12345678901234),
    ],
)
def test_valid_lines_off_the_minified_form_are_kept_with_the_same_values(tmp_path, line: str) -> None:
    result = run(tmp_path, {"p": [line]})
    assert result.quarantine.num_rows == 0
    (row,) = result.events.to_pylist()
    record = json.loads(line)
    ts = record.pop("ts")
    assert {k: row[k] for k in record} == record
    assert row["ts"] == datetime.fromisoformat(ts)
    assert row["extra_json"] is None


def test_duplicates_across_files_keep_the_first_delivery(tmp_path) -> None:
    result = run(tmp_path, {"part-00": [ev("a"), ev("b"), ev("a")], "part-01": [ev("b"), ev("c")]})
    assert sorted(result.events["event_id"].to_pylist()) == ["a", "b", "c"]
    assert result.stats.duplicates_removed == 2
    b = [r for r in result.events.to_pylist() if r["event_id"] == "b"][0]
    assert b["source_file"].endswith("part-00.jsonl.gz")


def test_timestamps_are_normalised_to_utc(tmp_path) -> None:
    result = run(tmp_path, {"p": [ev("a", ts="2026-11-01T15:30:00.250+05:30"), ev("b", ts="2026-11-01T10:00:00Z")]})
    ts = dict(zip(result.events["event_id"].to_pylist(), result.events["ts"].to_pylist()))
    assert ts["a"] == datetime(2026, 11, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert str(result.events.schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_schema_drift_keeps_the_event_and_its_new_field(tmp_path) -> None:
    result = run(tmp_path, {"p": [ev("a", app_version="5.2.0"), ev("b")]})
    rows = {r["event_id"]: r for r in result.events.to_pylist()}
    assert json.loads(rows["a"]["extra_json"])["app_version"] == "5.2.0"
    assert rows["b"]["extra_json"] is None
    assert result.unexpected_fields == {"app_version": 1}
    assert result.quarantine.num_rows == 0


@pytest.mark.parametrize("compact", [True, False], ids=["minified", "spaced"])
def test_a_repeated_field_keeps_its_first_value_and_the_whole_record(tmp_path, compact: bool) -> None:
    line = ev("a", compact=compact)[:-1] + (',"user_id":"x"}' if compact else ', "user_id": "x"}')
    result = run(tmp_path, {"p": [line]})
    (row,) = result.events.to_pylist()
    assert row["user_id"] == 1 and row["extra_json"] == line
    assert result.unexpected_fields == {} and result.quarantine.num_rows == 0


def test_login_needs_no_photo(tmp_path) -> None:
    result = run(tmp_path, {"p": [ev("a", event_type="login", photo_id=None)]})
    assert result.events.num_rows == 1 and result.events["photo_id"].to_pylist() == [None]


def test_truncated_gzip_keeps_complete_lines_and_quarantines_the_cut_one(tmp_path) -> None:
    whole = gzip.compress(("\n".join(ev(f"e{i}") for i in range(200)) + "\n").encode())
    result = run(tmp_path, {"p": whole[: len(whole) * 2 // 3]})
    assert 0 < result.events.num_rows < 200
    assert result.quarantine["reason"].to_pylist() == ["truncated gzip"]
    assert result.events.num_rows + result.quarantine.num_rows <= 200


def test_invalid_utf8_line_is_quarantined_and_others_kept(tmp_path) -> None:
    data = (ev("a") + "\n").encode() + b'{"event_id": "\xff\xfe"}\n' + (ev("b") + "\n").encode()
    result = run(tmp_path, {"p": gzip.compress(data)})
    assert sorted(result.events["event_id"].to_pylist()) == ["a", "b"]
    assert result.quarantine["reason"].to_pylist() == ["invalid utf-8"]


def test_not_gzip_at_all_is_one_quarantine_record(tmp_path) -> None:
    result = run(tmp_path, {"p": b"this is not gzip", "q": [ev("a")]})
    assert result.events["event_id"].to_pylist() == ["a"]
    (row,) = result.quarantine.to_pylist()
    assert row["reason"].startswith("corrupt gzip") and row["source_file"].endswith("p.jsonl.gz")


def test_empty_file_and_empty_day(tmp_path) -> None:
    result = run(tmp_path, {"p": gzip.compress(b"")})
    assert result.events.num_rows == 0 and result.quarantine.num_rows == 0


def test_zero_byte_file_is_reported(tmp_path) -> None:
    result = run(tmp_path, {"p": b"", "q": [ev("a")]})
    assert result.events["event_id"].to_pylist() == ["a"]
    assert result.quarantine["reason"].to_pylist() == ["empty file: zero bytes is not a gzip stream"]


def test_a_byte_order_mark_is_not_part_of_the_first_record(tmp_path) -> None:
    result = run(tmp_path, {"p": gzip.compress(b"\xef\xbb\xbf" + (ev("a") + "\n" + ev("b") + "\n").encode())})
    assert result.events["event_id"].to_pylist() == ["a", "b"] and result.quarantine.num_rows == 0


def test_blank_lines_are_counted_not_quarantined(tmp_path) -> None:
    result = run(tmp_path, {"p": ["", ev("a"), "   ", "\t", ev("b", compact=False), ""]})
    assert sorted(result.events["event_id"].to_pylist()) == ["a", "b"]
    assert result.quarantine.num_rows == 0 and result.stats.quarantined == 0
    assert result.stats.blank_lines == 4


def test_a_timestamp_without_a_zone_is_read_as_utc_and_counted(tmp_path) -> None:
    result = run(
        tmp_path,
        {
            "p": [
                ev("naive", ts="2026-11-01T10:00:00"),
                ev("spaced", ts="2026-11-01 23:30:00.5"),
                ev("zoned", ts="2026-11-01T10:00:00+01:00"),
            ]
        },
    )
    ts = dict(zip(result.events["event_id"].to_pylist(), result.events["ts"].to_pylist()))
    assert ts == {
        "naive": datetime(2026, 11, 1, 10, tzinfo=UTC),
        "spaced": datetime(2026, 11, 1, 23, 30, 0, 500000, tzinfo=UTC),
        "zoned": datetime(2026, 11, 1, 9, tzinfo=UTC),
    }
    assert result.stats.timestamps_without_zone == 2


def test_a_field_that_does_not_belong_to_the_event_type_is_kept_as_delivered(tmp_path) -> None:
    result = run(tmp_path, {"p": [ev("a", event_type="login", photo_id=7)]})  # README: kept; features ignore it
    assert result.events.to_pylist()[0]["photo_id"] == 7 and result.quarantine.num_rows == 0


def test_the_same_bytes_whatever_the_thread_counts(tmp_path) -> None:
    """A day's events file and quarantine do not depend on how many threads read and transform it."""
    lake = make_lake(tmp_path / "lake")
    days, _ = list_log_days(lake.store)
    day, listing = next(iter(days.items()))
    keys = [f.key for f in listing.files]
    outputs = []
    for reader_threads, duckdb_threads in ((1, 1), (2, 2), (8, 4)):
        lines = read_log_lines(lake.store, keys, reader_threads)
        with transform_events(lines, date.fromisoformat(day), threads=duckdb_threads) as result:
            path = tmp_path / f"events-{reader_threads}-{duckdb_threads}.parquet"
            write_events(result.events, path)
        outputs.append((path.read_bytes(), result.quarantine, result.stats))
    first = outputs[0]
    assert first[2].events > 1000 and first[1].num_rows > 0
    for other in outputs[1:]:
        assert other[0] == first[0] and other[1].equals(first[1]) and other[2] == first[2]
