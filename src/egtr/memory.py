"""How the process's C heap (glibc malloc) treats the large blocks that tensors free.

By default glibc serves each block above a dynamic threshold with a fresh mmap and unmaps it when the
tensor dies, so the next forward pass touches new pages again: about 100,000-250,000 page faults per
Visual Genome forward at 600x1000, roughly 8% of its CPU time. `keep_freed_memory()` makes freed blocks
stay in the heap for reuse (the resident size then stays at its peak, which it reached anyway);
`release_freed_memory()` does the opposite, so that the resident size follows the live tensors, which is
what a memory measurement needs; `trim_freed_memory()` returns what is free now, once (the server does so
after decoding a large image, so that the next one, decoded on another thread, does not add to it). All
are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap, and up to 1 GiB of free heap is kept


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Keep freed blocks for reuse instead of returning them to the system; True where applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))


def trim_freed_memory() -> bool:
    """Return the heap's free memory to the system now (all threads' arenas); True where applied."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def release_freed_memory() -> bool:
    """Return cached heap memory now and serve every block above 64 KiB by mmap from here on, so that
    freed tensors leave the process at once; True where applied."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024) and libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024))
