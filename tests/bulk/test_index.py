"""Shards and their index: a commit or a merge killed before each of its writes is all or nothing; what a
killed run leaves is cleaned; a damaged index is named, not trusted."""

from __future__ import annotations

import json

import pytest
from tests.bulk.killing import call_killed

from egtr.bulk.index import ShardIndex
from egtr.bulk.shard_formats import SHARD_FORMATS


def graphs(*names: str) -> list[dict]:
    return [{"image": name, "width": 4, "height": 3, "objects": [], "triplets": []} for name in names]


@pytest.fixture(params=list(SHARD_FORMATS))
def index(request, tmp_path) -> ShardIndex:
    return ShardIndex(tmp_path / "out", SHARD_FORMATS[request.param])


def writes_of(work, tmp_path) -> int:
    counted = tmp_path / "writes"
    assert call_killed(work, None, counted) == 0
    return int(counted.read_text())


def committed_images(index: ShardIndex) -> dict[str, list[str]]:
    """What the next run sees: after its clean-up, the committed shards."""
    index.clean()
    return index.committed()


def commit(index: ShardIndex, stem: str, *images: str):
    def work() -> int:
        index.commit(stem, graphs(*images))
        return 0

    return work


def test_a_commit_killed_before_any_of_its_writes_commits_all_or_nothing(index, tmp_path):
    index.commit("r00000-000001", graphs("a", "b"))
    first = {"r00000-000001": ["a", "b"]}
    elsewhere = ShardIndex(tmp_path / "elsewhere", index.format)
    writes = writes_of(commit(elsewhere, "r00000-000001", "x"), tmp_path)
    assert writes == 6  # per file: fsync of the data, rename, fsync of the folder; the entry, then the shard
    for at in range(1, writes + 1):
        assert call_killed(commit(index, "r00000-000002", "c", "d"), at) is None
        committed = at > 5  # killed after the shard's rename, the commit point
        assert committed_images(index) == {**first, **({"r00000-000002": ["c", "d"]} if committed else {})}, (
            at
        )
        assert not list(index.out.rglob("*.tmp"))
        assert (index.entries / "r00000-000002.json").exists() == committed
    assert index.next_sequence(0) == 3 and index.next_sequence(1) == 1


def test_a_merge_killed_before_any_of_its_writes_loses_nothing(index, tmp_path):
    for number in range(1, 4):
        index.commit(f"r0000{number}-000001", graphs(f"image{number}"))
    expected = index.committed()
    copy = ShardIndex(tmp_path / "copy", index.format)
    for number in range(1, 4):
        copy.commit(f"r0000{number}-000001", graphs(f"image{number}"))
    writes = writes_of(lambda: (copy.merge(), 0)[1], tmp_path)
    assert writes == 3 + 3 + 1  # index.json (3), the 3 entries removed, the folder synced

    def merge() -> int:
        index.merge()
        return 0

    for at in range(1, writes + 1):  # each attempt finds less to do: the later ones may end unkilled
        call_killed(merge, at)
        assert committed_images(index) == expected, at
    assert index.merge() == 3
    assert list(index.entries.iterdir()) == []  # every entry taken in
    assert index.committed() == expected
    merged = json.loads(index.merged.read_text())
    assert [entry["shard"] for entry in merged["shards"]] == [
        f"r0000{number}-000001{index.format.suffix}" for number in range(1, 4)
    ]


def test_a_shard_whose_entry_was_removed_gets_it_back_from_the_shard(index):
    index.commit("r00000-000001", graphs("a", "b"))
    (index.entries / "r00000-000001.json").unlink()
    assert index.committed() == {"r00000-000001": ["a", "b"]}


def test_an_entry_without_its_shard_is_not_committed_and_is_cleaned(index):
    index.commit("r00000-000001", graphs("a"))
    (index.shards / f"r00000-000001{index.format.suffix}").unlink()
    assert index.committed() == {}
    assert index.next_sequence(0) == 2  # the name stays taken until the clean-up
    index.clean()
    assert not (index.entries / "r00000-000001.json").exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("not json", "not JSON"),
        ('{"shard": "../../etc/passwd", "images": []}', "shard must be r00000-000001"),
        ('{"shard": "r00000-000001.SUFFIX", "images": "a"}', "images must be a list of paths"),
    ],
)
def test_a_damaged_entry_is_named_not_trusted(index, entry, message):
    index.commit("r00000-000001", graphs("a"))
    text = entry.replace("SUFFIX", index.format.suffix.lstrip("."))
    (index.entries / "r00000-000001.json").write_text(text)
    with pytest.raises(ValueError, match=message) as raised:
        index.committed()
    assert "r00000-000001.json" in str(raised.value)


def test_a_damaged_merged_index_is_named(index):
    index.commit("r00000-000001", graphs("a"))
    index.merge()
    index.merged.write_text(json.dumps({"format": "egtr predict index", "shards": [{"shard": "/tmp/x"}]}))
    with pytest.raises(ValueError, match=r"index.json: shards\[0\].shard is not a shard name"):
        index.committed()


def test_an_image_in_two_shards_is_refused(index):
    index.commit("r00000-000001", graphs("a"))
    index.commit("r00001-000001", graphs("a"))
    with pytest.raises(ValueError, match="a is in shards r00000-000001 and r00001-000001"):
        index.committed()
