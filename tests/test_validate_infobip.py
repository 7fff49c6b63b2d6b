"""``moments-pipeline validate --infobip``: the key checked with one read, never printed.

Against a served emulator: a good key passes (and the output says flows cannot be checked:
the API has no read for a flow), a bad key is a problem (exit 1), missing variables are named.
Only one request is made, a GET of a report that cannot exist: nothing changes state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings
from moments_pipeline.emulator.testing import ServedEmulator
from tests.test_validate import GOOD, run, write

KEY = "validate-key-9b2e77"


def _args(tmp_path: Path) -> tuple[str, ...]:
    return ("--audiences", str(tmp_path / "audiences"), "--no-warehouse")


@pytest.fixture
def served(emulator_registry: list[Any]) -> Iterator[ServedEmulator]:
    settings = EmulatorSettings(
        api_keys=[SecretStr(KEY)], rate_limit_per_s=None, record_exchanges=True
    )
    with ServedEmulator(settings, api_key=KEY) as emulator:
        emulator_registry.append(emulator.emulator)
        yield emulator


def _requests(served: ServedEmulator) -> list[dict[str, Any]]:
    answer = httpx.get(f"{served.base_url}/_emulator/requests", timeout=10)
    return [r for r in answer.json() if not str(r["path"]).startswith("/_emulator")]


def test_a_good_key_passes_and_flows_are_said_not_checkable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    served: ServedEmulator,
) -> None:
    write(tmp_path / "audiences", "vip.yaml", GOOD)
    monkeypatch.setenv("INFOBIP_BASE_URL", served.base_url)
    monkeypatch.setenv("INFOBIP_API_KEY", KEY)
    code, out = run(
        capsys, "--audiences", str(tmp_path / "audiences"), "--no-warehouse", "--infobip"
    )
    assert code == 0, out
    (summary,) = out
    assert f"infobip checked: key accepted by {served.base_url}" in summary
    assert "flows not checked (the Moments API has no read for a flow" in summary
    assert KEY not in summary
    requests = _requests(served)
    assert [(r["method"], r["operation"], r["status"]) for r in requests] == [
        ("GET", "get-flow-participants-added-report", 404)
    ]


def test_a_bad_key_is_a_problem_and_never_printed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    served: ServedEmulator,
) -> None:
    write(tmp_path / "audiences", "vip.yaml", GOOD)
    monkeypatch.setenv("INFOBIP_BASE_URL", served.base_url)
    monkeypatch.setenv("INFOBIP_API_KEY", "wrong-validate-key-1234")
    code, out = run(
        capsys, "--audiences", str(tmp_path / "audiences"), "--no-warehouse", "--infobip"
    )
    assert code == 1
    assert (
        out[0]
        == f"infobip: {served.base_url} refused the API key (AuthError:HTTP_401:UNAUTHORIZED)"
    )
    assert out[-1].startswith("1 problem(s) in 0 of 1 audience file(s)")
    assert "wrong-validate-key" not in "\n".join(out)
    assert len(_requests(served)) == 1


def test_missing_variables_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "audiences", "vip.yaml", GOOD)
    monkeypatch.delenv("INFOBIP_BASE_URL", raising=False)
    monkeypatch.delenv("INFOBIP_API_KEY", raising=False)
    code, out = run(
        capsys, "--audiences", str(tmp_path / "audiences"), "--no-warehouse", "--infobip"
    )
    assert code == 1
    assert out[0] == (
        "infobip: cannot check the API key: environment variable(s) not set: "
        "INFOBIP_BASE_URL, INFOBIP_API_KEY"
    )


def test_without_the_flag_nothing_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "audiences", "vip.yaml", GOOD)
    monkeypatch.setenv("INFOBIP_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("INFOBIP_API_KEY", KEY)
    code, out = run(capsys, *_args(tmp_path))
    assert code == 0 and "infobip" not in out[-1]
