"""YAML loader for audience definitions: one audience per file, or a directory of ``*.yaml``.

Every failure is a ``ConfigError`` whose lines start with the file, the line when known, and the
field path, e.g. ``audiences/vip.yaml: line 12: identity.phones[1]: 'bad name' is not a plain
identifier``. A directory is read completely before anything is raised, so one run shows every
bad file (``ConfigErrors``), not just the first.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from moments_pipeline.config._models import AudienceConfig
from moments_pipeline.config._yaml import Loc, line_of, parse_yaml

AUDIENCE_SUFFIXES = (".yaml", ".yml")
_M = TypeVar("_M", bound=BaseModel)


class ConfigError(ValueError):
    """An audience definition could not be read or is invalid.

    Attributes:
        path: The offending file.
        problems: One ``[line N: ]field: message`` line per problem (without the file).
    """

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__("\n".join(self.lines))

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields, not from the message (pickling, process pools).
        return (type(self), (self.path, self.problems))

    @property
    def lines(self) -> list[str]:
        """One ``file: [line N: ]field: message`` line per problem."""
        return [f"{self.path}: {p}" for p in self.problems]

    @property
    def errors(self) -> list[ConfigError]:
        """The per-file errors: just this one (``ConfigErrors`` holds several)."""
        return [self]


class ConfigErrors(ConfigError):
    """Several audience files are invalid: every file's problems, raised once.

    Attributes:
        errors: One ``ConfigError`` per bad file, in file name order.
        path: The file or directory that was loaded.
        problems: Every problem of every file, each line already starting with its file.
    """

    def __init__(self, path: Path | str, errors: Sequence[ConfigError]) -> None:
        self._errors = list(errors)
        self.path = Path(path)
        self.problems = [line for error in self._errors for line in error.lines]
        ValueError.__init__(self, "\n".join(self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self._errors))

    @property
    def lines(self) -> list[str]:
        return list(self.problems)

    @property
    def errors(self) -> list[ConfigError]:
        return list(self._errors)


def _field_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            model = _model_of(arg)
            if model is not None:
                return model
    return None


def _model_at(loc: Loc, root: type[BaseModel] = AudienceConfig) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (None below a plain dict or list)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        model = _model_of(model.model_fields[part].annotation)
    return model


def _unknown_field(loc: Loc, root: type[BaseModel] = AudienceConfig) -> str:
    model = _model_at(loc[:-1], root)
    known = list(model.model_fields) if model is not None else []
    match = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if match:
        return f"unknown field (did you mean {match[0]!r}?)"
    return f"unknown field (allowed: {', '.join(known)})" if known else "unknown field"


def _problems(
    error: ValidationError, lines: Mapping[Loc, int], root: type[BaseModel] = AudienceConfig
) -> list[tuple[int, str]]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        # Validators wrapped in Annotated add the function name to loc: keep only data keys
        # (and "[key]", which says a mapping's key rather than its value is wrong).
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        if item["type"] == "extra_forbidden":
            message = _unknown_field(loc, root)
        else:
            message = item["msg"].removeprefix("Value error, ")
        line = line_of(lines, tuple(p for p in loc if p != "[key]"))
        where = f"line {line}: " if line is not None else ""
        problems.append((line or 0, f"{where}{_field_path(loc)}: {message}"))
    return problems


def _validate(
    data: Any, path: Path | str, lines: Mapping[Loc, int], found: list[tuple[int, str]]
) -> AudienceConfig:
    return _validate_as(AudienceConfig, data, path, lines, found)


def _validate_as(
    model: type[_M],
    data: Any,
    path: Path | str,
    lines: Mapping[Loc, int],
    found: list[tuple[int, str]],
) -> _M:
    """Validate ``data`` as ``model`` (an audience or a form source), every problem at once."""
    problems = list(found)
    audience = None
    if not isinstance(data, dict):
        problems.append((0, f"<root>: expected a mapping, got {type(data).__name__}"))
    else:
        try:
            audience = model.model_validate(data)
        except ValidationError as exc:
            problems.extend(_problems(exc, lines, model))
    if problems or audience is None:
        # By line, so the message reads like the file; problems without a line come first.
        raise ConfigError(path, [text for _, text in sorted(problems, key=lambda p: p[0])])
    return audience


def parse_audience(
    data: Any, path: Path | str = "<memory>", *, lines: Mapping[Loc, int] | None = None
) -> AudienceConfig:
    """Validate an already parsed mapping as an audience.

    Args:
        data: The mapping read from YAML (or built in code).
        path: Name used in error messages.
        lines: Field path -> line, to name the line of each problem.

    Returns:
        The validated audience.

    Raises:
        ConfigError: The mapping is not a valid audience (every problem listed).
    """
    return _validate(data, path, lines or {}, [])


def load_audience(path: Path | str) -> AudienceConfig:
    """Read one audience YAML file.

    Args:
        path: The YAML file.

    Returns:
        The validated audience.

    Raises:
        ConfigError: The file is unreadable, not YAML, has a repeated key, or is not a valid
            audience.
    """
    return load_model_file(AudienceConfig, path)


def load_model_file(model: type[_M], path: Path | str) -> _M:
    """Read one YAML file as ``model``; errors name the file, the line and the field.

    Raises:
        ConfigError: unreadable, not YAML, a repeated key, or not a valid ``model``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"<file>: cannot read: {exc.__class__.__name__}"]) from None
    try:
        parsed = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<file>"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(path, [f"{where}: {problem}"]) from None
    duplicates = [
        (line, f"line {line}: {_field_path(loc)}: {message}")
        for line, loc, message in parsed.duplicates
    ]
    return _validate_as(model, parsed.data, path, parsed.lines, duplicates)


@dataclass
class AudienceFiles:
    """Everything read from an audience file or directory, good and bad.

    Attributes:
        audiences: Valid audiences by name, in file name order.
        files: Audience name -> the file defining it.
        errors: One ``ConfigError`` per bad file.
    """

    audiences: dict[str, AudienceConfig] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)


def audience_files(path: Path | str) -> list[Path]:
    """The audience files of a directory (``*.yaml``, ``*.yml``, by name), or ``[path]``."""
    path = Path(path)
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.suffix.lower() in AUDIENCE_SUFFIXES and p.is_file()
        )
    return [path]


def read_audiences(path: Path | str) -> AudienceFiles:
    """Read every audience of a file or directory, collecting the errors instead of raising.

    A second file defining an already used audience name is an error of that file.
    """
    result = AudienceFiles()
    path = Path(path)
    if not path.exists():
        # A relative path is read from the working directory, which differs between tools.
        where = "" if path.is_absolute() else f", relative to {Path.cwd()}"
        problem = f"does not exist (expected an audience file or directory{where})"
        result.errors.append(ConfigError(path, [problem]))
        return result
    collect_named(
        audience_files(path),
        load_audience,
        "audience",
        result.audiences,
        result.files,
        result.errors,
    )
    return result


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def collect_named(
    files: Iterable[Path],
    load: Callable[[Path], _N],
    kind: str,
    models: dict[str, _N],
    defined_in: dict[str, Path],
    errors: list[ConfigError],
) -> None:
    """Load each file into ``models`` by name, collecting errors instead of raising.

    A second file using a name already taken is an error of that file (``kind`` names what a
    file defines in the message: ``audience``, ``form source``).
    """
    for file in files:
        try:
            model = load(file)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if model.name in models:
            line = field_lines(file).get("name")
            where = f"line {line}: " if line is not None else ""
            problem = f"{where}name: {kind} {model.name!r} is already defined in "
            errors.append(ConfigError(file, [problem + str(defined_in[model.name])]))
            continue
        models[model.name] = model
        defined_in[model.name] = file


def load_audiences(path: Path | str) -> dict[str, AudienceConfig]:
    """Read an audience file, or every ``*.yaml`` / ``*.yml`` file of a directory.

    Args:
        path: A YAML file or a directory of them (not recursive).

    Returns:
        Audiences by name, in file name order.

    Raises:
        ConfigErrors: Some files are invalid, or two files define the same audience name;
            lists every problem of every file (``.errors`` has one ``ConfigError`` per file).
    """
    result = read_audiences(path)
    if result.errors:
        raise ConfigErrors(path, result.errors)
    return result.audiences


def field_lines(path: Path | str) -> dict[str, int]:
    """Field path as written in messages (``identity.phones[1]``) -> its line in an audience file.

    For messages about a valid file found later (a column missing from the warehouse); an
    unreadable or non-YAML file gives ``{}``.
    """
    try:
        parsed = parse_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return {_field_path(loc): line for loc, line in parsed.lines.items()}
