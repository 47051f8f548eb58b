"""Atomic writes: a failure leaves the old file and no temporary."""

import os

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


def test_durable_writes_sync_the_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(handle):
        calls.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{handle}"))))
        real_fsync(handle)

    def replace(source, target):
        calls.append(("replace", os.path.basename(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_text(tmp_path / "plain.json", "{}")
    assert calls == [("replace", "plain.json")]
    calls.clear()
    write_text(tmp_path / "durable.json", "{}", durable=True)
    assert [kind for kind, _ in calls] == ["fsync", "replace", "fsync"]
    assert calls[0][1].startswith(".durable.json.") and calls[2][1] == tmp_path.name
    assert (tmp_path / "durable.json").read_text() == "{}"
