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
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = argparse.ArgumentParser(prog="moments-pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in _SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        sub_parser.set_defaults(_module=module_name)
    # Parse the subcommand name first, then let its module declare its own arguments.
    known, _ = parser.parse_known_args(argv)
    module = importlib.import_module(known._module)
    sub_parser = sub.choices[known.command]
    module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
