"""A local emulator of the Infobip Moments API, for tests, demos and benchmarks.

Product code never imports this package (a test enforces the boundary); only the
``moments-pipeline emulator`` subcommand loads it, lazily.
"""

from .app import create_app
from .clock import Clock, ManualClock, SystemClock
from .people import Identifier, MergeRecord, PeopleStore, Profile, RequestScope
from .settings import (
    BasicUser,
    ConfigError,
    EmulatorSettings,
    FaultSettings,
    FlowConfig,
    QueuedFault,
    load_settings,
)
from .state import Emulator, Exchange

__all__ = [
    "BasicUser",
    "Clock",
    "ConfigError",
    "Emulator",
    "EmulatorSettings",
    "Exchange",
    "FaultSettings",
    "FlowConfig",
    "Identifier",
    "ManualClock",
    "MergeRecord",
    "PeopleStore",
    "Profile",
    "QueuedFault",
    "RequestScope",
    "SystemClock",
    "create_app",
    "load_settings",
]
