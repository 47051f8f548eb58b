"""The batcher: same-size jobs batch, others run alone; a lone job does not wait; failures and cancels."""

import threading

import pytest
import torch

from egtr.inference.predictor import PreparedImage
from egtr.serve.batching import Batcher, ServerBusy, same_size_groups

WAIT = 30.0  # seconds the model thread may wait for announced requests: long, so nothing depends on timing


def item(height: int, width: int, index: int = 0) -> PreparedImage:
    return PreparedImage(index, f"<image {index}>", pixel_values=torch.zeros(3, height, width))


class Recorder:
    """A stand-in for predict_prepared: records each batch and answers the images' sources."""

    def __init__(self, error: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.error = error
        self.release = threading.Event()
        self.release.set()

    def __call__(self, images, selections):
        self.release.wait(WAIT)
        self.batches.append([image.source for image in images])
        if self.error is not None:
            raise self.error
        return [f"graph of {image.source}" for image in images]


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def batcher(recorder):
    batcher = Batcher(recorder, max_batch=3, wait_s=WAIT, max_queue=8)
    batcher.start()
    yield batcher
    recorder.release.set()
    batcher.stop()


def submit_all(batcher, items):
    for _ in items:
        batcher.arrive()
    return [batcher.submit(prepared, None) for prepared in items]


def test_same_size_groups_keep_order_and_cut_at_the_batch_size():
    jobs = [
        type("Job", (), {"prepared": item(*size, i)})()
        for i, size in enumerate([(8, 8)] * 4 + [(8, 16), (8, 8)])
    ]
    groups = same_size_groups(jobs, max_batch=3)
    assert [[job.prepared.index for job in group] for group in groups] == [[0, 1, 2], [3, 5], [4]]


def test_announced_requests_are_awaited_and_run_as_one_batch(batcher, recorder):
    futures = submit_all(batcher, [item(8, 8, i) for i in range(3)])
    assert [future.result(WAIT) for future in futures] == [f"graph of <image {i}>" for i in range(3)]
    assert recorder.batches == [["<image 0>", "<image 1>", "<image 2>"]]
    assert batcher.report()["batch_sizes"] == {"3": 1}


def test_different_sizes_run_one_by_one_and_a_batch_stops_at_max_batch(batcher, recorder):
    sizes = [(8, 8), (8, 16), (8, 8), (8, 8), (8, 8)]
    futures = submit_all(batcher, [item(*size, i) for i, size in enumerate(sizes)])
    for future in futures:
        future.result(WAIT)
    # the first three taken: 0 and 2 batch, 1 (another size) runs alone; then 3 and 4
    assert recorder.batches == [["<image 0>", "<image 2>"], ["<image 1>"], ["<image 3>", "<image 4>"]]


def test_a_lone_request_does_not_wait_for_company(batcher, recorder):
    batcher.arrive()
    future = batcher.submit(item(8, 8), None)
    assert future.result(WAIT / 3) == "graph of <image 0>"  # well before the 30 s batch wait


def test_a_request_that_leaves_releases_the_wait(batcher, recorder):
    for _ in range(2):
        batcher.arrive()
    future = batcher.submit(item(8, 8), None)
    batcher.leave()  # the other one had a bad upload
    assert future.result(WAIT / 3) == "graph of <image 0>"


def test_a_cancelled_job_is_dropped_before_it_runs(batcher, recorder):
    recorder.release.clear()  # hold the model thread on the first batch
    first = submit_all(batcher, [item(8, 8, 0)])[0]
    later = submit_all(batcher, [item(8, 8, 1), item(8, 8, 2)])
    assert later[0].cancel()  # its client gave up while waiting
    recorder.release.set()
    assert first.result(WAIT) == "graph of <image 0>" and later[1].result(WAIT) == "graph of <image 2>"
    assert all("<image 1>" not in batch for batch in recorder.batches)


def test_a_failing_batch_tells_each_of_its_clients():
    recorder = Recorder(error=RuntimeError("out of memory"))
    batcher = Batcher(recorder, max_batch=4, wait_s=WAIT)
    batcher.start()
    try:
        futures = submit_all(batcher, [item(8, 8, i) for i in range(2)])
        for future in futures:
            with pytest.raises(RuntimeError, match="out of memory"):
                future.result(WAIT)
        assert batcher.report()["failed_batches"] == 1
    finally:
        batcher.stop()


def test_a_full_queue_and_a_stopped_batcher_refuse_requests(recorder):
    batcher = Batcher(recorder, max_batch=2, wait_s=WAIT, max_queue=2)
    batcher.arrive()
    batcher.arrive()
    with pytest.raises(ServerBusy, match=r"server busy: 2 requests are waiting \(limit 2\)"):
        batcher.arrive()
    waiting = batcher.submit(item(8, 8), None)  # never started: no thread
    batcher.stop()
    with pytest.raises(ServerBusy, match="shutting down"):
        waiting.result(WAIT)
    with pytest.raises(ServerBusy, match="shutting down"):
        batcher.arrive()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(Recorder(), max_batch=0)
