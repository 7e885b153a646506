"""Definitions sent through the API or the console, and the only files they may name.

A definition that arrives over the web comes from a remote caller: the server's files are not theirs to choose. Such
a definition names a file as a definition file does, through ``audience.path`` (the one key by which an audience
source names its file, see campaigns/launch.py ``audience_file``), but relative to ``definitions.files_dir`` and only
inside it. An absolute path, a ``..`` part, or a path that leads out of the folder through a symbolic link is refused,
naming the key and its line, before anything reads it; the version records where it came from (``web:<name>``), so
that each later launch reads its audience from that folder too. Template folders (send_message's ``template``, an
access review's ``templates``) are not file paths: they are looked up among the template folders only, and Jinja2's
loader refuses ``..`` in them.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from ..errors import DefinitionError
from .reading import CONTROL, shown

if TYPE_CHECKING:
    from ..settings import Settings
    from .loader import LoadedDefinition

SENT = "web:"  # campaign_versions.source of a version sent through the API or the console, before its name
NAME_LENGTH = 100
RULE = ("a definition sent through the API or the console names its files relative to the definition files folder "
        "(definitions.files_dir), and only inside it")


def files_dir(settings: Settings) -> Path:
    """``definitions.files_dir``; a relative one is under ``var_dir``."""
    folder = settings.definitions.files_dir
    return folder if folder.is_absolute() else settings.var_dir / folder


def sent_name(name: str | None, default: str) -> str:
    """The name a sent definition's problems and its version use: the last part of an uploaded file's name, on one
    line, at most NAME_LENGTH characters; ``default`` ("<pasted>") when there is none."""
    last = re.split(r"[\\/]", name or "")[-1]
    cleaned = CONTROL.sub("", last).strip()[:NAME_LENGTH]
    return cleaned or default


def sent_source(name: str) -> str:
    return f"{SENT}{name}"


def is_sent(source: str | None) -> bool:
    """Whether a version's recorded source is a definition sent over the web (a file's is an absolute path)."""
    return source is not None and source.startswith(SENT)


def check_sent_paths(loaded: LoadedDefinition, folder: Path) -> None:
    """Refuse a sent definition whose ``audience.path`` could reach a file outside ``folder``."""
    audience = loaded.definition.audience
    raw = (audience.model_extra or {}).get("path") if audience is not None else None
    if raw is None or raw == "":
        return
    where = f"{loaded.source.where(('audience', 'path'))}: audience.path"
    problem = _path_problem(raw, folder)
    if problem is not None:
        raise DefinitionError([f"{where}: {problem}; {RULE}"])


def _path_problem(raw: object, folder: Path) -> str | None:
    if not isinstance(raw, str):
        return f"must be a file's name, not a {type(raw).__name__}"
    if CONTROL.search(raw):
        return f"{shown(raw)} contains a control character"
    if PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).is_absolute() or PureWindowsPath(raw).drive \
            or raw.startswith("\\"):
        return f"{shown(raw)} is an absolute path"
    if raw.startswith("~"):
        return f"{shown(raw)} names a home folder"
    if ".." in re.split(r"[\\/]", raw):
        return f"{shown(raw)} climbs out of its folder (..)"
    try:
        inside = (folder / raw).resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a symbolic link loop
        inside = False
    return None if inside else f"{shown(raw)} leads out of the folder (a symbolic link)"
