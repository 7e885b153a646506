"""A definition's problems as fields: line, column, the path into the document, the node and the message.

Every problem DefinitionError carries is one line as the CLI prints it, ``FILE:LINE:COLUMN: PATH (node 'ID'):
MESSAGE`` (the position, the path and the node when there are any); the API and the console show the same problems
split into their parts, so that a program can point at the line and a person can find it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DefinitionError

POSITION = re.compile(r":(\d+):(\d+): (.*)", re.DOTALL)
QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
# describe_path's form (workflow.nodes[1].config.subject, or "(document)"), then the node's id as repr() wrote it.
LABEL = re.compile(rf"((?:[A-Za-z_][\w-]*|\[\d+\])(?:\.[\w-]+|\[\d+\])*|\(document\))(?: \(node ({QUOTED})\))?: (.*)",
                   re.DOTALL)
NODE = re.compile(rf"\bnode ({QUOTED})")


@dataclass(frozen=True)
class Problem:
    message: str  # what is wrong, without the position, path and node
    problem: str  # the whole line, as the CLI prints it
    line: int | None = None
    column: int | None = None
    path: str | None = None  # workflow.nodes[1].type
    node: str | None = None  # the id of the node the problem is in

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _node_id(quoted: str) -> str | None:
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def parse_problem(text: str, filename: str) -> Problem:
    rest, line, column = text, None, None
    if text.startswith(filename):
        after = text[len(filename):]
        found = POSITION.fullmatch(after)
        if found is not None:
            line, column, rest = int(found.group(1)), int(found.group(2)), found.group(3)
        elif after.startswith(": "):
            rest = after[2:]
    label = LABEL.fullmatch(rest)
    if label is not None:
        node = _node_id(label.group(2)) if label.group(2) else None
        return Problem(label.group(3), text, line, column, label.group(1), node)
    named = NODE.search(rest)
    return Problem(rest, text, line, column, None, _node_id(named.group(1)) if named else None)


def problems_of(error: DefinitionError, filename: str) -> list[Problem]:
    """``error``'s problems, for a definition read under ``filename``."""
    return [parse_problem(text, filename) for text in error.problems]
