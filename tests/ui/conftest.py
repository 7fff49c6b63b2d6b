"""The browser test's stack: sample warehouse, emulator, one materialized audience, webserver.

Built once per module and torn down whatever happens:

- the sample DuckDB warehouse (``scripts/build_sample_warehouse.py``) in a temporary directory;
- the emulator with the demo's flows, served on loopback in a thread (rate limit off);
- a temporary ``DAGSTER_HOME`` holding the project's ``dagster.yaml`` (SQLite storage), with
  telemetry and the first-visit pop-up off so that screenshots show the page;
- ``dagster-webserver`` on the project's code location (the one ``dg dev`` serves, from
  ``[tool.dg.project]``) on a free loopback port, in its own process group so its code server
  goes with it;
- one sample audience materialized into the same instance by ``materialize_sample.py`` in a
  child process, while the webserver starts;
- headless Debian ``chromium`` driven by Playwright (``executable_path``; never
  ``playwright install``: CI cannot download a browser). A missing browser fails the test and
  says how to install it (``scripts/install_chromium.sh``, which ``scripts/run_tests.sh`` runs).

Screenshots and the webserver's log go to ``test-artifacts/ui/`` (git-ignored), printed at the
end of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import yaml
from pydantic import SecretStr

from moments_pipeline.emulator.settings import load_settings
from moments_pipeline.emulator.testing import ServedEmulator

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from build_sample_warehouse import build_duckdb  # noqa: E402

ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = Path(os.environ.get("MOMENTS_CHROMIUM", "/usr/bin/chromium"))
API_KEY = "ui-test-key-never-shown-5c1e"
#: Generous: CI shares two cores; every wait ends as soon as the content is there.
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 180.0
PAGE_TIMEOUT_MS = 30_000
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
#: Settings the test adds to the project's instance file: no telemetry, no first-visit pop-up.
TEST_INSTANCE = {"telemetry": {"enabled": False}, "nux": {"enabled": False}}


@dataclass(frozen=True)
class UiStack:
    """The served UI and what the sample run did (``materialize_sample.py``'s report)."""

    base_url: str
    run: dict[str, Any]
    locations: list[str]

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def _instance_yaml() -> str:
    """The project's dagster.yaml (SQLite under DAGSTER_HOME), with the test's settings."""
    project = REPO / "dagster.yaml"
    config = (yaml.safe_load(project.read_text()) or {}) if project.exists() else {}
    return yaml.safe_dump({**config, **TEST_INSTANCE})


def _project_workspace(root: Path) -> Path:
    """A workspace file holding the code location ``dg dev`` serves for this project.

    ``[tool.dg.project]`` of pyproject.toml names it: ``dg dev`` (``make dev``) loads
    ``code_location_target_module`` under ``code_location_name``. The test serves that location
    with ``dagster-webserver`` alone: the pages read no daemon state, and ``dg dev``'s extra
    processes (daemon, code-server proxy) would double the start-up on two shared cores.
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    location = {
        "module_name": project["code_location_target_module"],
        "attribute": "defs",
        "working_directory": str(REPO),
        "location_name": project["code_location_name"],
    }
    path = root / "workspace.yaml"
    path.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The webserver's own process group: it and the code server it spawned, nothing else.
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def _wait_for_webserver(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> list[str]:
    """Until the webserver answers and its code locations are loaded; return their names.

    A location that failed to load fails here, with Dagster's message.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"dagster-webserver exited with {proc.returncode}; log {log}:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.post(f"{base_url}/graphql", json={"query": LOCATIONS}, timeout=5)
            if answer.status_code == 200:
                entries = answer.json()["data"]["workspaceOrError"]["locationEntries"]
                errors = [
                    f"{e['name']}: {e['locationOrLoadError'].get('message', '')}"
                    for e in entries
                    if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"
                ]
                if errors:
                    raise RuntimeError("the code location failed to load: " + "; ".join(errors))
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return [e["name"] for e in entries]
        if time.monotonic() > deadline:
            raise RuntimeError(f"dagster-webserver was not ready in {START_TIMEOUT_S:.0f} s")
        time.sleep(0.25)


def _run_sample(workspace: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    with log.open("wb") as err:
        done = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("materialize_sample.py")),
                str(workspace),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"materialize_sample.py exited with {done.returncode}; log {log}:\n"
            + log.read_text(errors="replace")[-3000:]
        )
    report: dict[str, Any] = json.loads(lines[-1])
    report["log"] = str(log)
    return report


@pytest.fixture(scope="module")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """The webserver on the project with one sample audience materialized."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.iterdir():
        if old.is_file():
            old.unlink()
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_instance_yaml())
    # Create the instance's storage now: the webserver and the run both start on it at once,
    # and two processes migrating one fresh SQLite schema leave it with two alembic heads.
    dg.DagsterInstance.from_config(str(home)).dispose()
    workspace = _project_workspace(root)
    warehouse = root / "warehouse.duckdb"
    build_duckdb(warehouse)
    settings = load_settings(REPO / "data_samples" / "emulator.yaml").model_copy(
        update={
            "api_keys": [SecretStr(API_KEY)],
            "rate_limit_per_s": None,
            "processing_delay_s": 0.05,
        }
    )
    with ServedEmulator(settings, api_key=API_KEY) as emulator:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "INFOBIP_BASE_URL": emulator.base_url,
            "INFOBIP_API_KEY": API_KEY,
            "MOMENTS_WAREHOUSE_URL": f"duckdb:///{warehouse}",
            "MOMENTS_AUDIENCES_DIR": str(REPO / "audiences"),
        }
        for name in ("MOMENTS_CALLBACK_HOST", "MOMENTS_CALLBACK_PORT", "DAGSTER_IS_DEV_CLI"):
            env.pop(name, None)  # reports are polled; no receiver port to collide on
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        web_log = ARTIFACTS / "webserver.log"
        exe = Path(sys.executable).with_name("dagster-webserver")
        with web_log.open("wb") as out:
            proc = subprocess.Popen(
                [str(exe), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # The run goes while the webserver starts; both only read the definitions.
            run = _run_sample(workspace, env, ARTIFACTS / "materialize_sample.log")
            locations = _wait_for_webserver(proc, base_url, web_log)
            yield UiStack(base_url=base_url, run=run, locations=locations)
        finally:
            _stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium, through Playwright."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: run `bash scripts/install_chromium.sh` (scripts/run_tests.sh "
        "does), or set MOMENTS_CHROMIUM to a Chromium binary"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; its screenshot is kept as ``test-artifacts/ui/<test>.png``, pass or fail."""
    context = browser.new_context(viewport={"width": 1600, "height": 1400})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        name = request.node.name.removeprefix("test_")
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            (ARTIFACTS / f"{name}.html").write_text(page.content())
        context.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ARTIFACTS.is_dir() and any(ARTIFACTS.glob("*.png")):
        shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
        terminalreporter.write_line(f"browser test artifacts: {ARTIFACTS} ({', '.join(shots)})")
