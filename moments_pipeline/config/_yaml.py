"""Strict YAML reading: ``yaml.safe_load`` semantics, plus duplicate keys and field lines.

PyYAML silently keeps the last of two equal keys, so a pasted block can override a setting
without a word; here each duplicate becomes a problem naming both lines. The line map (field
path -> 1-based line) lets validation errors found later by pydantic point at the line too.
Only ``SafeLoader`` tags are known: no python objects can be built from a config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[int | str, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class DuplicateKey:
    """A mapping key given twice (the later value would otherwise silently win)."""

    node: MappingNode
    key: Any
    line: int
    first_line: int


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` whose mapping constructor records duplicate keys instead of dropping them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[DuplicateKey] = []

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            # Checked before SafeConstructor flattens `<<` merges: a key overriding a merged
            # one is YAML's intended use, not a duplicate.
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeConstructor refuses unhashable keys itself, with a mark.
                line = key_node.start_mark.line + 1
                if key in first:
                    self.duplicates.append(DuplicateKey(node, key, line, first[key]))
                else:
                    first[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]

    def construct_lenient_timestamp(self, node: ScalarNode) -> Any:
        """A date or timestamp, or its text when impossible (``2026-13-01``).

        PyYAML raises a bare ValueError there; as text, validation refuses it with its field
        and line (``partition.start_date``) like any other bad value.
        """
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


StrictLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    StrictLoader.construct_lenient_timestamp,
)


@dataclass
class ParsedYaml:
    """The data of one YAML document, with where each field was written.

    Attributes:
        data: What ``yaml.safe_load`` would return.
        lines: Field path (as pydantic's ``loc``) -> line of its key or item.
        duplicates: ``(line, field path, message)`` for each repeated key.
    """

    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    duplicates: list[tuple[int, Loc, str]] = field(default_factory=list)


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document strictly.

    Raises:
        yaml.YAMLError: The text is not YAML (the error carries a ``problem_mark``).
    """
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    parsed = ParsedYaml(data)
    if node is None:
        return parsed
    paths: dict[int, Loc] = {}
    _index(node, (), parsed.lines, paths, loader)
    for dup in loader.duplicates:
        loc = (*paths.get(id(dup.node), ()), dup.key)
        parsed.duplicates.append(
            (dup.line, loc, f"duplicate key {dup.key!r} (first given at line {dup.first_line})")
        )
    return parsed


def _index(
    node: Node, loc: Loc, lines: dict[Loc, int], paths: dict[int, Loc], loader: StrictLoader
) -> None:
    # An alias reuses a node: index it once, which also ends recursion on `&a [*a]`.
    if id(node) in paths:
        return
    paths[id(node)] = loc
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = loader.construct_object(key_node)
            if not isinstance(key, int | str):
                continue
            child = (*loc, key)
            # A later duplicate overwrites: its value is the one validated (last wins).
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, paths, loader)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines[child] = item.start_mark.line + 1
            _index(item, child, lines, paths, loader)


def line_of(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of its nearest written parent (a missing field's parent)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None
