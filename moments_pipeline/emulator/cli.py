"""``moments-pipeline emulator``: serve the emulator with uvicorn (one worker, httptools).

Command-line values take precedence over the config file. The API key is a secret: it is
never printed (the startup line names the account, not the key), and it may come from the
``MOMENTS_EMULATOR_API_KEY`` environment variable instead of ``--api-key``, so that it does not
show in the process list (``--api-key`` wins when both are given). SIGTERM/SIGINT shut down
cleanly, compacting the state journal.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

__all__ = ["API_KEY_ENV", "add_arguments", "run"]

API_KEY_ENV = "MOMENTS_EMULATOR_API_KEY"


def _rate(value: str) -> float | None:
    """Parse ``--rate-limit``: a positive number or ``off``."""
    if value.lower() == "off":
        return None
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of requests/s or 'off'") from None
    if rate <= 0:
        raise argparse.ArgumentTypeError("the rate must be > 0 (or 'off')")
    return rate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's arguments."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument(
        "--api-key",
        help=f"key accepted as 'Authorization: App' (default: ${API_KEY_ENV}, kept out of ps)",
    )
    parser.add_argument("--config", type=Path, help="YAML or JSON settings file")
    parser.add_argument("--state", type=Path, help="journal file; state survives restarts")
    parser.add_argument("--rate-limit", help="requests/s per account, or 'off'")
    parser.add_argument("--latency-ms", type=int, help="latency added to every API answer")
    parser.add_argument("--processing-delay-s", type=float, help="delay before processing")
    parser.add_argument("--credits", type=int, help="credit balance (default unlimited)")
    parser.add_argument("--fault-seed", type=int, help="seed of random faults")
    parser.add_argument("--error-rate", type=float, help="share of 500/502/503 answers")
    parser.add_argument("--drop-before-rate", type=float, help="share dropped before processing")
    parser.add_argument("--drop-after-rate", type=float, help="share dropped after processing")
    parser.add_argument(
        "--manual-clock", action="store_true", help="time moves only via /_emulator/clock/advance"
    )
    parser.add_argument("--log-level", default="warning")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; return the exit code."""
    import uvicorn

    from .app import create_app
    from .clock import ManualClock
    from .gate import quiet_dropped_connections
    from .settings import ConfigError, EmulatorSettings, load_settings

    api_key = args.api_key or os.environ.get(API_KEY_ENV)
    if not api_key:
        print(
            f"moments-pipeline emulator: give the API key with --api-key or ${API_KEY_ENV}",
            file=sys.stderr,
        )
        return 2
    overrides: dict[str, Any] = {}
    if args.state is not None:
        overrides["state_path"] = args.state
    if args.rate_limit is not None:
        try:
            overrides["rate_limit_per_s"] = _rate(args.rate_limit)
        except argparse.ArgumentTypeError as exc:
            print(f"moments-pipeline emulator: --rate-limit: {exc}", file=sys.stderr)
            return 2
    if args.processing_delay_s is not None:
        overrides["processing_delay_s"] = args.processing_delay_s
    if args.credits is not None:
        overrides["credits"] = args.credits
    try:
        settings = load_settings(args.config) if args.config is not None else EmulatorSettings()
        fault_update = {
            key: value
            for key, value in (
                ("latency_ms", args.latency_ms),
                ("seed", args.fault_seed),
                ("error_rate", args.error_rate),
                ("drop_before_rate", args.drop_before_rate),
                ("drop_after_rate", args.drop_after_rate),
            )
            if value is not None
        }
        faults = settings.faults.model_validate({**settings.faults.model_dump(), **fault_update})
        overrides["faults"] = faults
        overrides["api_keys"] = [*settings.api_keys, SecretStr(api_key)]
        settings = EmulatorSettings.model_validate({**settings.model_dump(), **overrides})
    except (ConfigError, ValidationError) as exc:
        print(f"moments-pipeline emulator: {exc}", file=sys.stderr)
        return 2
    clock = ManualClock() if args.manual_clock else None
    app = create_app(settings, clock=clock)
    # This process serves only the emulator, so it may keep its state out of the cyclic GC.
    app.state.emulator.freeze_gc = True
    # A 1000-participant body parses into ~15,000 objects: with the default young-generation
    # threshold (700) every request ran ~20 collections, doubling the cost of parsing it.
    gc.set_threshold(50_000, 20, 20)
    quiet_dropped_connections()
    print(
        f"Infobip Moments emulator on http://{args.host}:{args.port} "
        f"(inspection under /_emulator/, state: {settings.state_path or 'in memory'})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        log_level=args.log_level,
        access_log=False,
        workers=1,
    )
    return 0
