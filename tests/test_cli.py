"""The ``moments-pipeline`` dispatcher: subcommand arguments and help are the module's own."""

from __future__ import annotations

import pytest

from moments_pipeline.cli import main


def test_subcommand_help_lists_its_own_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--api-key", "--config", "--state", "--rate-limit", "--latency-ms"):
        assert flag in out


def test_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "command" in capsys.readouterr().err


def test_subcommand_rejects_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", "--api-key", "k", "--no-such-flag"])
    assert exit_info.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_validate_is_a_subcommand_with_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--audiences", "--warehouse", "--no-warehouse"):
        assert flag in out
