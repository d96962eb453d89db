"""Handing memory the process freed back to the operating system."""

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library is not glibc."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return getattr(libc, "malloc_trim", None)


def release_freed_memory() -> None:
    """Return free pages inside glibc's heap to the OS. Buffers of a few hundred KB to 32 MB
    (torch tensors, numpy arrays of a batch) come from the heap, and a freed one stays in the
    process: batch after batch the peak creeps up with the day's size. Trimming after each
    batch cut a 10x day's shards from 1.6 to 1.2 GB in the same time, and held a 100x day's
    image embeddings near 0.9 GB where they had grown to 2.2 GB (docs/BENCHMARKS.md, "scale")."""
    if (trim := _malloc_trim()) is not None:
        trim(0)
