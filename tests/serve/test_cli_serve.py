"""`egtr serve` options: help with defaults, limits from flags, tokens from a file or the environment, hosts,
one-line errors."""

import pytest

from egtr.cli import build_parser, main
from egtr.cli.serve import (
    TOKEN_VARIABLE,
    allowed_hosts,
    build_predictor,
    is_local,
    server_limits,
    worker_settings,
)
from egtr.serve.limits import MIB, ServerLimits, format_bytes, limit_fields, parse_bytes


def parse(*arguments):
    return build_parser().parse_args(["serve", *map(str, arguments)])


def test_help_names_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (
        ("--host", "127.0.0.1"),
        ("--port", "8000"),
        ("--workers", "1"),
        ("--max-batch", "8"),
        ("--max-body-bytes", "20MiB"),
        ("--max-upload-bytes-in-flight", "64MiB"),
        ("--max-decoded-bytes-in-flight", "400MiB"),
        ("--max-connections", "256"),
        ("--max-connections-per-client", "32"),
        ("--min-upload-rate", "32KiB"),
        ("--body-timeout", "10"),
        ("--head-timeout", "10"),
        ("--max-pixels", "40000000"),
        ("--timeout", "60"),
        ("--device", "auto"),
    ):
        assert flag in text and f"(default: {default})" in text, flag
    assert "--token-file" in text and "--allowed-host" in text


def test_every_limit_has_a_flag_and_the_flags_set_them():
    flags = parse(
        "--max-batch", 4, "--max-body-bytes", "512KiB", "--timeout", 9, "--max-queue", 7,
        "--max-upload-bytes-in-flight", "3MiB", "--max-connections", 20, "--max-connections-per-client", 5,
        "--min-upload-rate", "1KiB", "--body-timeout", 2.5, "--head-timeout", 3, "--decoders", 1,
        "--max-decoded-bytes-in-flight", "1GiB", "--max-pixels", 1000, "--batch-wait-ms", 0, "--max-stall", 2,
    )  # fmt: skip
    limits = server_limits(flags)
    assert limits == ServerLimits(
        max_batch=4, max_body_bytes=512 * 1024, timeout_s=9, max_queue=7, max_upload_bytes_in_flight=3 * MIB,
        max_connections=20, max_connections_per_client=5, min_upload_rate=1024, body_timeout_s=2.5,
        head_timeout_s=3, decoders=1, max_decoded_bytes_in_flight=1 << 30, max_pixels=1000, batch_wait_ms=0,
        max_stall_s=2,
    )  # fmt: skip
    assert len(limit_fields()) == 15  # the test above sets every one


def test_sizes_parse_and_print_with_binary_units():
    assert [parse_bytes(text) for text in ("20MiB", "512kib", "1GiB", "1048576", "1.5MiB", "7B")] == [
        20 * MIB, 512 * 1024, 1 << 30, 1 << 20, 3 * MIB // 2, 7,
    ]  # fmt: skip
    assert [format_bytes(count) for count in (20 * MIB, 32 * 1024, 1 << 30, 1536 * 1024, 100)] == [
        "20MiB", "32KiB", "1GiB", "1.5MiB", "100B",
    ]  # fmt: skip
    for text in ("20MB", "lots", "-1", "1e6"):
        with pytest.raises(ValueError, match="is not a size"):
            parse_bytes(text)


def test_the_token_comes_from_a_file_the_environment_or_the_flag(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(TOKEN_VARIABLE, "from-env")
    assert server_limits(parse()).token == "from-env"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    secret.chmod(0o600)
    assert server_limits(parse("--token-file", secret)).token == "from-file"
    assert capsys.readouterr().err == ""
    secret.chmod(0o644)
    server_limits(parse("--token-file", secret))
    assert f"note: {secret} can be read by other users: chmod 600 {secret}" in capsys.readouterr().err
    assert server_limits(parse("--token", "given")).token == "given"
    assert "a --token shows in the process list; prefer --token-file" in capsys.readouterr().err


def test_beyond_this_machine_a_token_is_required(monkeypatch, tmp_path):
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    for host in ("0.0.0.0", "::", "192.168.1.4"):
        with pytest.raises(
            Exception, match=f"--host {host} listens beyond this machine, so a token is required"
        ):
            server_limits(parse("--host", host))
    monkeypatch.setenv(TOKEN_VARIABLE, "secret")
    assert server_limits(parse("--host", "0.0.0.0")).token == "secret"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-batch", 0], "--max-batch must be at least 1, got 0"),
        (["--timeout", 0], "--timeout must be positive, got 0.0"),
        (["--max-body-bytes", 0], "--max-body-bytes must be at least 1, got 0"),
        (
            ["--max-connections", 4, "--max-connections-per-client", 5],
            "--max-connections-per-client must be at",
        ),
        (
            ["--max-upload-bytes-in-flight", "1MiB"],
            "--max-upload-bytes-in-flight must hold one largest body and a read (20.1MiB), got 1MiB",
        ),
        (["--size", 600, "--max-size", 500], "--max-size (500) must be at least --size (600)"),
        (["--port", 70000], "--port must be in 0..65535, got 70000"),
        (["--workers", 0], "--workers must be at least 1, got 0"),
        (["--token", " "], "--token must not be empty"),
        (["--token-file", "/nonexistent/token"], "--token-file /nonexistent/token: cannot read it"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, arguments, message):
    assert main(["serve", *map(str, arguments)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"egtr serve: error: {message}")


def test_a_bad_size_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parse("--max-body-bytes", "20MB")
    assert "argument --max-body-bytes: '20MB' is not a size" in capsys.readouterr().err


def test_an_empty_token_file_is_an_error(capsys, tmp_path):
    (tmp_path / "empty").write_text("\n")
    assert main(["serve", "--token-file", str(tmp_path / "empty")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"egtr serve: error: --token-file {tmp_path / 'empty'}: the file is empty"
    )


def test_without_a_checkpoint_it_says_how_to_get_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 2
    assert "no --checkpoint given and no demo model" in capsys.readouterr().err


def test_the_predictor_follows_the_flags(checkpoint):
    flags = parse("--size", 40, "--max-size", 60, "--max-batch", 3, "--exif")
    predictor = build_predictor(flags, checkpoint)
    assert (predictor.size, predictor.max_size, predictor.batch_size) == (40, 60, 3)
    assert predictor.reading.exif and predictor.reading.conversion == "official"
    assert str(predictor.device) == "cpu" and predictor.max_pixels == 40_000_000


def test_local_hosts_and_the_names_a_tokenless_server_answers():
    assert all(map(is_local, ("127.0.0.1", "localhost", "::1", "127.0.0.2")))
    assert not any(map(is_local, ("0.0.0.0", "192.168.1.4", "example.org", "::")))
    hosts = allowed_hosts(parse("--host", "127.0.0.2", "--allowed-host", "box.local", "--allowed-host", "pc"))
    assert hosts == ("127.0.0.1", "localhost", "::1", "127.0.0.2", "box.local", "pc")


def test_workers_share_the_cpu_cores_unless_threads_are_given(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_settings(parse("--workers", 2), 1, 2).threads == 4
    assert worker_settings(parse("--workers", 3), 0, 3).threads == 2
    assert worker_settings(parse("--workers", 2, "--threads", 3), 0, 2).threads == 3
    assert worker_settings(parse(), 0, 1).threads is None


def test_workers_take_one_gpu_each_where_there_are_gpus(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    devices = [worker_settings(parse("--workers", 3), index, 3).device for index in range(3)]
    assert devices == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_settings(parse("--workers", 2, "--device", "cuda:1"), 0, 2).device == "cuda:1"
    assert worker_settings(parse("--workers", 2, "--device", "cpu"), 0, 2).threads is not None
