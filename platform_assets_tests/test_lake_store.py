import pyarrow as pa
import pytest

from platform_assets.lib.lake_store import LakeKeyError, LakeStore, validate_key


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/path", "a/../../b", "a//b", "a/./b", "a/b c", ""])
def test_keys_that_escape_or_are_odd_are_rejected(key: str) -> None:
    with pytest.raises(LakeKeyError):
        validate_key(key)


class _HalfWrittenStream:
    """An output stream whose writer dies halfway through its bytes."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def __enter__(self) -> "_HalfWrittenStream":
        return self

    def __exit__(self, *exc) -> None:
        self._stream.close()

    def write(self, data: bytes) -> None:
        self._stream.write(data[: len(data) // 2])
        self._stream.flush()
        raise OSError("writer killed mid-write")


class _DyingFilesystem:
    """The lake's local filesystem, except that writes die halfway or the final rename fails."""

    def __init__(self, fs, dies: str) -> None:
        self._fs, self._dies = fs, dies

    def __getattr__(self, name: str):
        return getattr(self._fs, name)

    def open_output_stream(self, path: str, **kwargs):
        stream = self._fs.open_output_stream(path, **kwargs)
        return _HalfWrittenStream(stream) if self._dies == "mid_write" else stream

    def move(self, src: str, dest: str) -> None:
        if self._dies == "at_rename":
            raise OSError("rename failed")
        self._fs.move(src, dest)


def test_a_rewrite_replaces_the_bytes_and_leaves_no_temporary_files(tmp_path) -> None:
    store = LakeStore(str(tmp_path))
    store.write_bytes("a/b/c.bin", b"x" * 10)
    store.write_bytes("a/b/c.bin", b"y" * 3)
    assert store.read_bytes("a/b/c.bin") == b"yyy"
    assert [e.key for e in store.list_files("a")] == ["a/b/c.bin"]
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.bin"]


@pytest.mark.parametrize("dies", ["mid_write", "at_rename"])
def test_a_write_that_dies_leaves_the_old_bytes_and_no_partial_file(tmp_path, monkeypatch, dies: str) -> None:
    store = LakeStore(str(tmp_path))
    store.write_bytes("a/b/c.bin", b"old" * 4)
    original = LakeStore._fs_and_base

    def dying(self: LakeStore):
        fs, base = original(self)
        return _DyingFilesystem(fs, dies), base

    monkeypatch.setattr(LakeStore, "_fs_and_base", dying)
    with pytest.raises(OSError):
        store.write_bytes("a/b/c.bin", b"new" * 1000)
    monkeypatch.undo()
    assert store.read_bytes("a/b/c.bin") == b"old" * 4  # readers still see the whole old object
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.bin"]  # no partial temporary left


def test_parquet_bytes_are_deterministic(tmp_path) -> None:
    store = LakeStore(str(tmp_path))
    table = pa.table({"x": list(range(100)), "y": [str(i) for i in range(100)]})
    store.write_parquet("one.parquet", table)
    store.write_parquet("two.parquet", table)
    assert store.read_bytes("one.parquet") == store.read_bytes("two.parquet")
    assert store.read_parquet("one.parquet").equals(table)


def test_gz_files_are_stored_as_given_not_recompressed(tmp_path) -> None:
    store = LakeStore(str(tmp_path))
    store.write_bytes("logs/x.jsonl.gz", b"\x1f\x8bnot really")
    assert (tmp_path / "logs" / "x.jsonl.gz").read_bytes() == b"\x1f\x8bnot really"
    assert store.read_bytes("logs/x.jsonl.gz") == b"\x1f\x8bnot really"
