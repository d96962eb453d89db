"""The reader's own parse of canonical records is an accelerator, never a judge: on any input,
typing the day's lines in the reader gives, byte for byte, the events, quarantine and counts
of the SQL path that reads every line as text."""

import gzip
import json
from datetime import date

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.lib.lake_layout import list_log_days
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.staging.canonical_events import split_lines
from platform_assets.lib.staging.events import EVENTS_SCHEMA, transform_events
from platform_assets.lib.staging.log_lines import read_log_lines
from platform_assets_tests.helpers import make_lake, transform_day

DAY = date(2026, 11, 1)
KEY = "logs/dt=2026-11-01/hour=10/p.jsonl.gz"


def both_paths(tmp_path, text: bytes, threads: int = 2) -> tuple[dict, dict]:
    """What the typed path and the all-text path make of one file."""
    store = LakeStore(str(tmp_path))
    store.write_bytes(KEY, gzip.compress(text))
    out = []
    for day in (DAY, None):
        with transform_events(read_log_lines(store, [KEY], day, threads), DAY) as result:
            events = pa.Table.from_batches([b for t in result.events for b in t.to_batches()], EVENTS_SCHEMA)
            out.append(
                {
                    "events": events.to_pylist(),
                    "quarantine": result.quarantine.to_pylist(),
                    "stats": result.stats,
                    "reasons": result.reasons,
                    "drift": result.unexpected_fields,
                }
            )
    return out[0], out[1]


def canonical(event_id="e1", ts="2026-11-01T10:00:00.000Z", event_type="view", user_id="1", photo_id="2", client="ios"):
    """A line in the producer's exact form; values are spliced in as given (JSON text for the numbers)."""
    return (
        f'{{"event_id":"{event_id}","ts":"{ts}","event_type":"{event_type}",'
        f'"user_id":{user_id},"photo_id":{photo_id},"client":"{client}"}}'
    )


EDGES = [
    canonical(),
    canonical(ts="2026-11-01T10:00:00+05:30"),
    canonical(ts="2026-11-01T23:59:59.999999Z"),
    canonical(ts="2026-11-01T00:00:00-00:00"),
    canonical(ts="2026-11-01T09:00:00.5-08:00"),
    canonical(ts="2026-10-31T20:00:00-08:00"),  # 04:00 UTC on the day
    canonical(ts="2024-02-29T10:00:00Z"),
    canonical(ts="2026-11-02T01:00:00+01:00"),  # 00:00 UTC of the next day: outside
    canonical(ts="2026-11-01T00:30:00+01:00"),  # 23:30 UTC the day before: outside
    canonical(ts="2026-11-01T10:00:00.1234567Z"),  # 7 fraction digits
    canonical(ts="2026-11-01T10:00:00.Z"),
    canonical(ts="2026-11-01T10:00:00z"),
    canonical(ts="2026-11-01 10:00:00Z"),
    canonical(ts="2026-11-01T10:00:00"),  # no zone
    canonical(ts="2026-11-01T24:00:00Z"),
    canonical(ts="2026-11-01T10:00:60Z"),
    canonical(ts="2026-11-01T10:00:00+0530"),
    canonical(ts="2026-11-01T10:00:00+15:59"),
    canonical(ts="2026-11-01T10:00:00+16:00"),
    canonical(ts="2026-02-29T10:00:00Z"),
    canonical(user_id="0"),
    canonical(user_id="-0"),
    canonical(user_id="007"),
    canonical(user_id="-12"),
    canonical(user_id="999999999999999999"),
    canonical(user_id="9999999999999999999"),
    canonical(user_id="99999999999999999999"),
    canonical(user_id="1.0"),
    canonical(user_id='"1"'),
    canonical(photo_id="null"),
    canonical(photo_id="null", event_type="login"),
    canonical(event_type="View"),
    canonical(event_type="teleport"),
    canonical(event_id=""),
    canonical(event_id=" x"),
    canonical(event_id="\x7fx"),
    canonical(event_id="é✓"),
    canonical(event_id='a\\"b'),
    canonical(event_id="a\\u0041"),
    canonical(event_id="tab\there"),
    canonical(client=""),
    canonical(client="web\\n"),
    canonical() + " ",
    " " + canonical(),
    canonical()[:-1] + ',"note":"x"}',
    canonical()[:-1] + ',"user_id":7}',
    canonical()[:-1] + ",}",
    canonical()[:-1],
    json.dumps(json.loads(canonical())),  # spaced
    "",
    "{}",
]


@pytest.mark.parametrize("line", EDGES)
def test_each_edge_case_line_gives_what_the_sql_path_gives(tmp_path, line: str) -> None:
    typed, text = both_paths(tmp_path, f"{canonical('first')}\n{line}\n{canonical('last')}\n".encode())
    assert typed == text


def test_line_ends_damage_and_bad_utf8_are_handled_as_the_text_path_does(tmp_path) -> None:
    good = canonical().encode()
    for i, text in enumerate(
        [
            good + b"\r\n" + good.replace(b"e1", b"e2") + b"\r\n",  # CRLF
            b"\xef\xbb\xbf" + good + b"\n",  # a byte-order mark
            good,  # no final newline
            good.replace(b"e1", b"e\xff1") + b"\n" + good.replace(b"e1", b"e2") + b"\n",  # not UTF-8
            good + b"\n" + good.replace(b"e1", b"e2") + b"\n\n\n",  # blank lines
        ]
    ):
        typed, plain = both_paths(tmp_path / str(i), text)
        assert typed == plain, text


def test_a_line_cut_by_damage_is_quarantined_even_when_it_reads_as_a_whole_record(tmp_path) -> None:
    data = gzip.compress((canonical("a") + "\n" + canonical("b")).encode())  # no final newline
    store = LakeStore(str(tmp_path))
    store.write_bytes(KEY, data[:-8])  # trailer gone: truncated
    with transform_events(read_log_lines(store, [KEY], DAY), DAY) as result:
        reasons = [r["reason"] for r in result.quarantine.to_pylist()]
    assert reasons == ["truncated gzip"]


def test_typed_values_match_the_line(tmp_path) -> None:
    text = "\n".join(
        [canonical("a", "2026-11-01T10:00:00.5+05:30", "login", "-3", "null", "é"), canonical("b", user_id="12")]
    ).encode()
    split = split_lines(np.frombuffer(text, np.uint8), DAY)
    assert split.typed.to_pylist()[0] | {"ts": None} == {
        "line_number": 1,
        "event_id": "a",
        "ts": None,
        "event_type": "login",
        "user_id": -3,
        "photo_id": None,
        "client": "é",
    }
    assert str(split.typed["ts"][0]) == "2026-11-01 04:30:00.500000+00:00"
    assert split.typed["user_id"].to_pylist() == [-3, 12] and len(split.raw) == 0


def test_concatenated_gzip_members_are_all_read(tmp_path) -> None:
    """libdeflate reads one member only: a file of two members must still give both."""
    store = LakeStore(str(tmp_path))
    one, two = (gzip.compress((canonical(i) + "\n").encode()) for i in ("a", "b"))
    store.write_bytes(KEY, one + two)
    same = gzip.compress((canonical("a") + "\n").encode())
    store.write_bytes(KEY.replace("p.", "q."), same + same)  # same size and checksum twice
    keys = [KEY, KEY.replace("p.", "q.")]
    with transform_events(read_log_lines(store, keys, DAY), DAY) as result:
        assert result.stats["lines"] == 4 and result.stats["duplicates_removed"] == 2


PIECES = st.sampled_from(['"', "\\", "\\n", "\t", "é", "✓", " ", "\x7f", "a", "0", "-", ":", "Z", "+", "."])


def pieces(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(PIECES, max_size=max_size).map("".join)


def mostly(valid: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Valid values four times in five, so most lines take the typed path and their values are compared."""
    return st.one_of(valid, valid, valid, valid, odd)


NUMBERS = st.integers(-(10**18), 10**18).map(str)
FIELDS = {
    "event_id": mostly(st.text("abc019_-", min_size=1, max_size=6).map(lambda s: "e" + s), pieces(3)),
    "ts": st.builds(
        lambda d, h, f, z: f"2026-{d}T{h}:00:00{f}{z}",
        st.sampled_from(["11-01", "11-01", "11-01", "10-31", "11-02", "02-29", "11-31"]),
        st.sampled_from(["00", "09", "12", "23", "24"]),
        st.sampled_from(["", ".1", ".123456", ".1234567", "."]),
        st.sampled_from(["Z", "Z", "+05:30", "-08:00", "+15:59", "-03:07", "z", "+16:00", "", "+0530", "-00:00"]),
    ),
    "event_type": mostly(st.sampled_from(["view", "login", "comment"]), st.sampled_from(["View", "x", ""])),
    "user_id": mostly(NUMBERS, st.sampled_from(["-0", "01", "1e3", '"1"', "null", "99999999999999999999"])),
    "photo_id": mostly(NUMBERS | st.just("null"), st.sampled_from(["2.5", '"2"', "-0"])),
    "client": mostly(st.sampled_from(["ios", "web", "é"]), pieces(3)),
}


def test_a_simulated_lake_gives_what_the_sql_path_gives(tmp_path) -> None:
    """The simulator's clients, time zones, drift and defects, day by day."""
    lake = make_lake(tmp_path)
    days, _ = list_log_days(lake.store)
    for day, listing in days.items():
        keys = [f.key for f in listing.files]
        typed, text = (transform_day(lake.store, keys, date.fromisoformat(day), typed) for typed in (True, False))
        assert typed.events.equals(text.events) and typed.quarantine.equals(text.quarantine)
        assert typed.stats == text.stats and typed.events.num_rows > 1000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.builds(canonical, **FIELDS).flatmap(
            lambda line: st.sampled_from([line, line[:-1] + ',"k":1}', line + " ", line.replace(":", ": ", 1)])
        ),
        min_size=1,
        max_size=30,
    )
)
def test_generated_lines_give_what_the_sql_path_gives(tmp_path_factory, lines: list[str]) -> None:
    typed, text = both_paths(tmp_path_factory.mktemp("lines"), ("\n".join(lines) + "\n").encode())
    assert typed == text
