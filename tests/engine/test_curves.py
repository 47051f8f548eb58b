"""Loss curves from the CSV logs of a phase, across a resumed run."""

from egtr.engine.curves import keep_previous_log, log_files, plot_loss_curves, read_columns


def write_log(path, rows):
    path.write_text(
        "epoch,step,train/loss,validation_loss\n" + "".join(f"0,{s},{t},{v}\n" for s, t, v in rows)
    )


def test_resumed_runs_keep_every_log_and_plot_them(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "metrics.csv", [(0, 5.0, ""), (9, 4.0, 3.5)])
    keep_previous_log(logs)
    write_log(logs / "metrics.csv", [(19, 3.0, ""), (29, 2.0, 1.5)])
    keep_previous_log(logs)
    write_log(logs / "metrics.csv", [(39, 1.0, 0.5)])
    assert [p.name for p in log_files(logs)] == ["metrics-1.csv", "metrics-2.csv", "metrics.csv"]
    assert read_columns(logs / "metrics-1.csv")["validation_loss"] == [(9, 3.5)]
    png = plot_loss_curves(logs, tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000


def test_nothing_to_plot(tmp_path):
    assert plot_loss_curves(tmp_path, tmp_path / "curves.png") is None
