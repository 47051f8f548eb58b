"""Progress reporting: plain lines when stderr is not a terminal, nothing when disabled."""

from egtr.inference.progress import track


def test_plain_progress_lines_and_disabled_progress(capsys):
    assert list(track(range(20), 20, "predicting")) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("predicting: 20/20 (")
    assert list(track(iter(range(3)), 3, "predicting", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
