"""`egtr serve` options: help with defaults, limits from flags and environment, one-line errors."""

import pytest

from egtr.cli import build_parser, main
from egtr.cli.serve import TOKEN_VARIABLE, build_predictor, is_local, server_limits
from egtr.serve.limits import MEGABYTE


def parse(*arguments):
    return build_parser().parse_args(["serve", *map(str, arguments)])


def test_help_names_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (
        ("--host", "127.0.0.1"),
        ("--port", "8000"),
        ("--max-batch", "8"),
        ("--max-body-mb", "20.0"),
        ("--max-pixels", "40000000"),
        ("--timeout", "60.0"),
        ("--device", "auto"),
    ):
        assert flag in text and f"(default: {default})" in text


def test_limits_come_from_the_flags_and_the_token_from_the_environment(monkeypatch):
    monkeypatch.setenv(TOKEN_VARIABLE, "from-env")
    limits = server_limits(parse("--max-batch", 4, "--max-body-mb", 0.5, "--timeout", 9, "--max-queue", 7))
    assert (limits.max_batch, limits.max_body_bytes, limits.timeout_s, limits.max_queue) == (
        4,
        MEGABYTE // 2,
        9,
        7,
    )
    assert limits.token == "from-env"
    assert server_limits(parse("--token", "given")).token == "given"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-batch", 0], "--max-batch must be at least 1, got 0"),
        (["--timeout", 0], "--timeout must be positive, got 0.0"),
        (["--max-body-mb", 0], "--max-body-mb (in bytes) must be at least 1, got 0"),
        (["--size", 600, "--max-size", 500], "--max-size (500) must be at least --size (600)"),
        (["--port", 70000], "--port must be in 0..65535, got 70000"),
        (["--token", " "], "--token must not be empty"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, arguments, message):
    assert main(["serve", *map(str, arguments)]) == 2
    assert capsys.readouterr().err.strip() == f"egtr serve: error: {message}"


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


def test_local_hosts():
    assert all(map(is_local, ("127.0.0.1", "localhost", "::1", "127.0.0.2")))
    assert not any(map(is_local, ("0.0.0.0", "192.168.1.4", "example.org", "::")))
