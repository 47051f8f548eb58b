"""Loss curves from the CSV logs of a phase, across a resumed run."""

from egtr.engine.curves import (
    keep_previous_log,
    learning_curve,
    log_files,
    plot_learning_curve,
    plot_loss_curves,
    read_columns,
)
from egtr.engine.metrics import SceneGraphMetrics


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


def test_learning_curve_from_the_logs_of_a_resumed_phase(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    header = "epoch,step,train/loss,val/AP50,val/R@50,val/mR@50,val/minutes\n"
    (logs / "metrics.csv").write_text(header + "0,9,3.0,,,,\n0,99,,0.5,0.2,0.1,1.5\n")
    keep_previous_log(logs)
    (logs / "metrics.csv").write_text(header + "0,199,,0.8,0.6,0.4,3.25\n")
    points = learning_curve(logs)
    assert points == [
        {"steps": 100, "minutes": 1.5, "R@50": 0.2, "mR@50": 0.1, "AP50": 0.5},
        {"steps": 200, "minutes": 3.25, "R@50": 0.6, "mR@50": 0.4, "AP50": 0.8},
    ]
    png = plot_learning_curve(points, tmp_path / "curve.png", "title")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert plot_learning_curve([], tmp_path / "none.png") is None


def test_training_time_is_carried_over_a_resumption():
    metrics = SceneGraphMetrics({"val": [], "test": []}, 3, 2, "vg", ["a", "b"], None)
    assert metrics.training_seconds() == 0.0
    metrics.load_state_dict({"training_seconds": 120.0})  # what the killed run's checkpoint held
    metrics.on_train_start(None, None)
    assert 120.0 <= metrics.training_seconds() < 121.0
    assert metrics.state_dict()["training_seconds"] >= 120.0
