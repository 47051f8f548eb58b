"""Atomic writes: a failure leaves the old file and no temporary."""

import pytest

from egtr.files import write_atomically, write_text


def test_atomic_writes_leave_no_partial_file(tmp_path):
    target = tmp_path / "deep" / "out.json"
    write_text(target, "old")

    def failing(stream):
        stream.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, failing)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
