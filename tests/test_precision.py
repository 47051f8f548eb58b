import pytest
import torch

from egtr import hardware, precision


@pytest.fixture
def cpu_with(monkeypatch):
    def set_flags(flags: str) -> None:
        monkeypatch.setattr(hardware, "_cpuinfo", lambda: {"model name": "Test CPU", "flags": flags})

    return set_flags


def test_native_support_follows_the_cpu_flags(cpu_with):
    cpu_with("fpu sse avx2 fma")
    assert not hardware.native_bf16() and not hardware.native_fp16()
    cpu_with("avx2 avx512f avx512_bf16 amx_tile amx_bf16")
    assert hardware.native_bf16() and not hardware.native_fp16()
    cpu_with("avx512f avx512_fp16 amx_fp16")
    assert hardware.native_fp16()


def test_describe_names_the_cpu_and_its_flags(cpu_with):
    cpu_with("fpu avx2 fma amx_bf16")
    line = hardware.describe()
    assert "Test CPU" in line and "avx2 fma amx_bf16" in line and "threads" in line


def test_precision_note_only_for_emulated_cpu_dtypes(cpu_with):
    cpu_with("avx2 fma")
    assert "no native bf16" in precision.precision_note("cpu", "bf16")
    assert "no native fp16" in precision.precision_note("cpu", "fp16")
    assert precision.precision_note("cpu", "fp32") is None
    cpu_with("avx2 amx_bf16")
    assert precision.precision_note("cpu", "bf16") is None


def test_autocast_casts_matmuls_and_fp32_is_a_no_op():
    a = torch.randn(4, 4)
    with precision.autocast("cpu", "fp32"):
        assert (a @ a).dtype == torch.float32
    with precision.autocast("cpu", "bf16"):
        assert (a @ a).dtype == torch.bfloat16


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        precision.autocast("cpu", "int8")
