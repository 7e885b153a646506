"""Definition files into plain values, within limits, remembering where every value stands in the file.

A definition may come from anyone who can write a file: an alias bomb, deep nesting, binary or mis-encoded bytes
or an unknown tag is refused with one line naming the file, line and column, in bounded time and memory, and never
reaches the database. Whatever is accepted can be stored as JSON by SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import DefinitionError
from ..settings import DefinitionSettings

Path_ = tuple[str | int, ...]

# YAML's core schema plus timestamps. Anything else (!vault, !!binary, !!set, !!python/...) is not a plain value:
# it would fail later, or be stored as something other than what was written.
PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}"
                       for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map"))
MERGE_TAG = "tag:yaml.org,2002:merge"
SCALAR_KINDS = {"tag:yaml.org,2002:int": "integer", "tag:yaml.org,2002:float": "number",
                "tag:yaml.org,2002:timestamp": "date and time"}
# What YAML refuses in a file (the reader's NON_PRINTABLE), found first so the message can give the byte offset.
UNPRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# JSON integers both databases keep exactly (PostgreSQL bigint, SQLite's 64-bit integers).
INT_LIMIT = 2**63
BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"))


@dataclass
class SourceMap:
    """Maps a path into the document (keys and list indexes) to its 1-based line and column."""

    filename: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Sequence[str | int]) -> str:
        """``file:line:col`` of the deepest part of ``path`` that exists in the file."""
        parts = tuple(path)
        while parts and parts not in self.positions:
            parts = parts[:-1]
        line, col = self.positions.get(parts, (1, 1))
        return f"{self.filename}:{line}:{col}"


def describe_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def shown(text: str, limit: int = 40) -> str:
    """A value quoted for a one-line message: escaped, and cut when long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def read_definition_bytes(path: Path, limits: DefinitionSettings) -> bytes:
    """The file's bytes, never more than the limit plus one (a device or a huge file is not read whole)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise DefinitionError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > limits.max_file_bytes:
        raise DefinitionError([f"{path}: the file is larger than {limits.max_file_bytes} bytes "
                               "(definitions.max_file_bytes)"])
    return data


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def decode_definition(data: bytes, filename: str) -> str:
    """UTF-8 text (a UTF-8 byte order mark is allowed); anything else is named with its byte offset."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            raise DefinitionError([f"{filename}:1:1: the file is {encoding} (byte order mark at byte offset 0); "
                                   "definitions are UTF-8: save it as UTF-8"])
    nul = data.find(b"\0")
    if nul >= 0:
        line, column = _position(data, nul)
        raise DefinitionError([f"{filename}:{line}:{column}: NUL byte at byte offset {nul}: definitions are UTF-8 "
                               "text (is this a UTF-16 or binary file?)"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
        line, column = _position(data, offset)
        raise DefinitionError([f"{filename}:{line}:{column}: not valid UTF-8: byte 0x{data[offset]:02x} at byte "
                               f"offset {offset} ({exc.reason}); save the file as UTF-8"]) from None


def check_text(text: str, filename: str, limits: DefinitionSettings) -> None:
    """Size and characters of a definition given as text (a file's, once decoded, or one passed in code)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_file_bytes:
        raise DefinitionError([f"{filename}: the definition is larger than {limits.max_file_bytes} bytes "
                               "(definitions.max_file_bytes)"])
    bad = UNPRINTABLE.search(text)
    if bad is not None:
        start = text.rfind("\n", 0, bad.start()) + 1
        line, column = text.count("\n", 0, bad.start()) + 1, bad.start() - start + 1
        offset = len(text[:bad.start()].encode("utf-8", "surrogatepass"))
        raise DefinitionError([f"{filename}:{line}:{column}: control character U+{ord(bad.group()):04X} at byte "
                               f"offset {offset}: not allowed in a definition"])


class DefinitionLoader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false. A node called `yes`, `no`, `on` or `off` stays a string.

    Composing counts nesting and aliases against the limits: PyYAML composes recursively, so deep nesting would
    otherwise end in RecursionError."""

    def __init__(self, stream: str, limits: DefinitionSettings | None = None, filename: str = "") -> None:
        super().__init__(stream)
        self.limits = limits or DefinitionSettings()
        self.filename = filename
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > self.limits.max_aliases:
                mark = self.peek_event().start_mark
                raise DefinitionError([f"{self.filename}:{mark.line + 1}:{mark.column + 1}: more than "
                                       f"{self.limits.max_aliases} aliases (definitions.max_aliases)"])
            return super().compose_node(parent, index)
        nests = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        self.depth += nests
        try:
            if self.depth > self.limits.max_depth:
                mark = self.peek_event().start_mark
                raise DefinitionError([f"{self.filename}:{mark.line + 1}:{mark.column + 1}: nested deeper than "
                                       f"{self.limits.max_depth} levels (definitions.max_depth)"])
            return super().compose_node(parent, index)
        finally:
            self.depth -= nests


DefinitionLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
DefinitionLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_document(text: str, filename: str, limits: DefinitionSettings | None = None) -> tuple[Any, SourceMap]:
    """YAML (JSON is a subset) into Python values plus a SourceMap; every problem names line and column."""
    limits = limits or DefinitionSettings()
    check_text(text, filename, limits)
    loader = DefinitionLoader(text, limits, filename)
    try:
        root = loader.get_single_node()
        if root is None:
            raise DefinitionError([f"{filename}:1:1: the file is empty"])
        source = SourceMap(filename)
        return _Builder(loader, source, limits).build(root, ()), source
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        # "expected a single document in the stream, but found another document"
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or str(exc).splitlines()[0]
        raise DefinitionError([f"{where}: {what}"]) from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DefinitionError([f"{filename}: {first}"]) from None
    finally:
        loader.dispose()


class _Builder:
    """Nodes into values, counting what aliases expand to: the composed file is small, its expansion may not be."""

    def __init__(self, loader: DefinitionLoader, source: SourceMap, limits: DefinitionSettings) -> None:
        self.loader = loader
        self.source = source
        self.limits = limits
        self.nodes = 0
        self.chars = 0
        self.open: set[int] = set()  # the collections being built: an alias to one of them is a cycle

    def fail(self, node: yaml.Node, path: Path_, message: str) -> DefinitionError:
        mark = node.start_mark
        return DefinitionError([f"{self.source.filename}:{mark.line + 1}:{mark.column + 1}: "
                                f"{describe_path(path)}: {message}"])

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.source.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.fail(node, path, f"more than {self.limits.max_nodes} values once aliases are expanded "
                                        "(definitions.max_nodes)")
        if node.tag not in PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise self.fail(node, path, f"unsupported YAML tag {tag!r}: a definition holds plain values (text, "
                                        "numbers, true/false, lists and mappings)")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.open:
            raise self.fail(node, path, "an alias refers to a list or mapping that contains it")
        if len(path) >= self.limits.max_depth:
            raise self.fail(node, path, f"nested deeper than {self.limits.max_depth} levels once aliases are "
                                        "expanded (definitions.max_depth)")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)  # the composer makes only these three kinds
            return self.mapping(node, path)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                raise self.fail(key_node, path, "merge keys (<<) are not supported: write the values out")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in PLAIN_TAGS:
                raise self.fail(key_node, path, "mapping keys must be plain values")
            key = self.scalar(key_node, path)
            if key is None:
                raise self.fail(key_node, path, "mapping keys must be plain values")
            # Keys are text, as JSON keeps them: `true:` is "true", `1:` is "1".
            text = str(key).lower() if isinstance(key, bool) else str(key)
            control = CONTROL.search(text)
            if control is not None:
                raise self.fail(key_node, path, f"key {shown(text)} contains control character "
                                                f"U+{ord(control.group()):04X}")
            child = (*path, text)
            self.source.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if text in result:
                raise self.fail(key_node, child, f"duplicate key {text!r}")
            result[text] = self.build(value_node, child)
        return result

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        text = node.value
        if len(text) > self.limits.max_string_chars:
            raise self.fail(node, path, f"a value longer than {self.limits.max_string_chars} characters "
                                        "(definitions.max_string_chars)")
        self.chars += len(text)
        if self.chars > self.limits.max_total_chars:
            raise self.fail(node, path, f"more than {self.limits.max_total_chars} characters of text once aliases "
                                        "are expanded (definitions.max_total_chars)")
        try:
            value = self.loader.construct_object(node)
        except (ValueError, OverflowError) as exc:  # a timestamp out of range, an integer of 5000 digits
            kind = SCALAR_KINDS.get(node.tag, "value")
            reason = str(exc).split(";")[0].split(": ")[0]  # Python's first clause; its details are for programmers
            raise self.fail(node, path, f"{shown(text)} is not a valid {kind}"
                                        + (f" ({reason})" if len(reason) <= 80 else "")) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, path, f"{shown(text)} is not a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value < INT_LIMIT:
            raise self.fail(node, path, f"{shown(text)} is out of range (a 64-bit integer)")
        if isinstance(value, str) and "\0" in value:
            raise self.fail(node, path, "a text contains NUL (U+0000), which no database column can hold")
        return value
