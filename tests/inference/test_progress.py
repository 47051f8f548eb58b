"""Progress reporting: plain lines when stderr is not a terminal (done/total, rate, time left), nothing when
disabled; counted by iterating (`track`) or by the caller (`Progress.advance`)."""

import re

from egtr.inference.progress import Progress, track

LINE = re.compile(r"predicting: (\d+)/20 \(\d+\.\d\d/s, ETA \d+:\d\d:\d\d\)")


def test_plain_progress_lines_and_disabled_progress(capsys):
    assert list(track(range(20), 20, "predicting")) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and all(LINE.fullmatch(line) for line in lines), lines
    assert lines[-1].startswith("predicting: 20/20 (") and lines[-1].endswith("ETA 0:00:00)")
    assert list(track(iter(range(3)), 3, "predicting", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_progress_counted_by_the_caller_prints_a_line_per_tenth(capsys):
    with Progress(20, "predicting") as progress:
        for count in (3, 3, 3, 11):  # results arriving in batches
            progress.advance(count)
    done = [int(LINE.fullmatch(line)[1]) for line in capsys.readouterr().err.splitlines()]
    assert done == [3, 6, 9, 20]
