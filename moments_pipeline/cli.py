"""The ``moments-pipeline`` command line.

Subcommands are dispatched lazily so that importing the CLI imports nothing heavy. The
``emulator`` subcommand is the single place outside ``moments_pipeline.emulator`` allowed to
import the emulator (the import-boundary test knows this file), and it does so only when the
user asks for the emulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# subcommand -> (module providing `add_arguments(parser)` and `run(args) -> int`, help text)
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("moments_pipeline.emulator.cli", "serve the local Moments API emulator"),
    "validate": (
        "moments_pipeline.validate",
        "check every audience file, and each audience against its warehouse (read-only)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="moments-pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in _SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        # Only the chosen subcommand's module is imported, before parsing, so that its own
        # arguments (and its --help) are known.
        if args_list and args_list[0] == name:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    args = parser.parse_args(args_list)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
