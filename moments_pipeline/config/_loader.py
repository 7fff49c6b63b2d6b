"""YAML loader for audience definitions: one audience per file, or a directory of ``*.yaml``.

Every failure becomes a ``ConfigError`` whose message starts with the file and the field path,
e.g. ``audiences/vip.yaml: identity.phones[1]: 'bad name' is not a plain identifier``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from moments_pipeline.config._models import AudienceConfig


class ConfigError(ValueError):
    """An audience definition could not be read or is invalid.

    Attributes:
        path: The offending file.
        problems: One ``field: message`` line per problem.
    """

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__("\n".join(f"{self.path}: {p}" for p in self.problems))


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        # Validators wrapped in Annotated add the function name to loc; keep only data keys.
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{_field_path(loc)}: {message}")
    return problems


def parse_audience(data: Any, path: Path | str = "<memory>") -> AudienceConfig:
    """Validate an already parsed mapping as an audience.

    Args:
        data: The mapping read from YAML (or built in code).
        path: Name used in error messages.

    Returns:
        The validated audience.

    Raises:
        ConfigError: The mapping is not a valid audience.
    """
    if not isinstance(data, dict):
        raise ConfigError(path, [f"<root>: expected a mapping, got {type(data).__name__}"])
    try:
        return AudienceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc)) from None


def load_audience(path: Path | str) -> AudienceConfig:
    """Read one audience YAML file.

    Args:
        path: The YAML file.

    Returns:
        The validated audience.

    Raises:
        ConfigError: The file is unreadable, not YAML, or not a valid audience.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"<file>: cannot read: {exc.__class__.__name__}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<file>"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(path, [f"{where}: {problem}"]) from None
    return parse_audience(data, path)


def load_audiences(path: Path | str) -> dict[str, AudienceConfig]:
    """Read an audience file, or every ``*.yaml`` / ``*.yml`` file of a directory.

    Args:
        path: A YAML file or a directory of them (not recursive).

    Returns:
        Audiences by name, in file name order.

    Raises:
        ConfigError: A file is invalid, or two files define the same audience name.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    else:
        files = [path]
    audiences: dict[str, AudienceConfig] = {}
    origin: dict[str, Path] = {}
    for file in files:
        audience = load_audience(file)
        if audience.name in audiences:
            raise ConfigError(
                file,
                [f"name: audience {audience.name!r} is already defined in {origin[audience.name]}"],
            )
        audiences[audience.name] = audience
        origin[audience.name] = file
    return audiences
