"""A fixture for modules of tiny models: one torch thread (fastest for tiny inputs, and steady when other
processes load the CPU). Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
