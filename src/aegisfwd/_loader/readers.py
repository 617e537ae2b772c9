"""Reading a topology file: JSON, YAML or TOML into plain data.

Duplicate mapping keys, which YAML and Python's JSON would otherwise resolve silently (last one
wins), are errors here. So are hostile shapes that would otherwise escape as Python errors: JSON
and TOML nested deeper than ``MAX_NESTING`` (found by a vectorised scan *before* parsing, so the
recursive parsers never see them, whatever the interpreter's recursion limit) and integers too long
for ``int()`` (Python refuses more than 4,300 digits).
"""

from __future__ import annotations

import json
import mmap
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TopologyError, TopologyIssue

__all__ = ["MAX_NESTING", "mapped_bytes", "parse_document", "read_bytes", "read_document"]

#: What the file's bytes come as: ``bytes``, or a read-only memory map of the file.
Buffer = bytes | mmap.mmap

# Brackets a document may nest. A topology needs about 5 (document, pools, a pool, its ips, an ip's
# holders); the limit leaves room for any sane tooling while staying far from the recursion limit.
MAX_NESTING = 64

# What can hide a bracket: strings (JSON and TOML: basic, literal, multi-line) and TOML comments.
_JSON_OPAQUE = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_TOML_OPAQUE = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')


def _check_nesting(text: str, opaque: re.Pattern[str]) -> None:
    """_ParseError at the first bracket nested deeper than MAX_NESTING (strings and comments blanked
    out first, keeping every offset, so the line and column are those of the file)."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return
    blank = opaque.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    raw = np.frombuffer(blank.encode("utf-32-le"), dtype=np.uint32)
    step = np.isin(raw, (ord("["), ord("{"))).astype(np.int32) - np.isin(raw, (ord("]"), ord("}")))
    depth = np.cumsum(step)
    deep = np.flatnonzero(depth > MAX_NESTING)
    if deep.size:
        at = int(deep[0])
        line = blank.count("\n", 0, at) + 1
        column = at - (blank.rfind("\n", 0, at) + 1) + 1
        raise _ParseError(f"line {line}, column {column}: nested deeper than {MAX_NESTING} levels")


def _too_big(exc: ValueError) -> _ParseError:
    return _ParseError(f"a number too large to read: {str(exc).split(';')[0]}")


def _yaml_load(text: str, issues: list[TopologyIssue]) -> Any:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(base):  # type: ignore[misc, valid-type]
        """Safe loader that reports duplicate keys instead of silently keeping the last one."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        marker = (type(key), key)
                        first = seen.get(marker)
                    except TypeError:  # unhashable: the base class reports it
                        continue
                    if first is not None:
                        m, f = key_node.start_mark, first.start_mark
                        issues.append(
                            TopologyIssue(
                                "duplicate-key",
                                "",
                                (
                                    f"line {m.line + 1}, column {m.column + 1}: key {key!r} appears twice in one "
                                    f"mapping (first at line {f.line + 1}); YAML would silently keep only the last"
                                ),
                            )
                        )
                    else:
                        seen[marker] = key_node
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: builds plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = "; ".join(x for x in (exc.context, exc.problem) if x)
        raise _ParseError(f"{where}{problem or exc}") from None
    except yaml.YAMLError as exc:
        raise _ParseError(str(exc)) from None
    except ValueError as exc:  # an integer of more digits than int() accepts
        raise _too_big(exc) from None


def _json_load(text: str, issues: list[TopologyIssue]) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                issues.append(
                    TopologyIssue(
                        "duplicate-key",
                        "",
                        (
                            f"key {k!r} appears twice in one object; JSON readers would silently keep only the last"
                        ),
                    )
                )
            out[k] = v
        return out

    _check_nesting(text, _JSON_OPAQUE)
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _ParseError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # an integer of more digits than int() accepts
        raise _too_big(exc) from None


def _toml_load(text: str, issues: list[TopologyIssue]) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    _check_nesting(text, _TOML_OPAQUE)
    try:
        return tomllib.loads(text)  # duplicate keys are already an error in TOML
    except tomllib.TOMLDecodeError as exc:
        raise _ParseError(str(exc)) from None  # the message carries "(at line L, column C)"
    except ValueError as exc:  # an integer of more digits than int() accepts
        raise _too_big(exc) from None


class _ParseError(Exception):
    pass


_READERS: dict[str, Callable[[str, list[TopologyIssue]], Any]] = {
    ".json": _json_load,
    ".yaml": _yaml_load,
    ".yml": _yaml_load,
    ".toml": _toml_load,
}


def _fail(issues: list[TopologyIssue], source: str) -> TopologyError:
    return TopologyError(issues, source)


def read_document(path: Path) -> Any:
    """The parsed document of a ``.json``, ``.yaml``/``.yml`` or ``.toml`` file, not yet validated."""
    return parse_document(read_bytes(path), path)


def read_bytes(path: Path) -> bytes:
    """The bytes of a topology file whose extension names a format we read."""
    with mapped_bytes(path) as raw:
        return bytes(raw)


@contextmanager
def mapped_bytes(path: Path) -> Iterator[Buffer]:
    """The bytes of a topology file whose extension names a format we read, memory-mapped read-only
    while the block runs (hashing them then costs no copy)."""
    source = str(path)
    if path.suffix.lower() not in _READERS:
        raise _fail(
            [
                TopologyIssue(
                    "unsupported-extension",
                    "",
                    (
                        f"cannot tell the format of {path.name!r} from its extension; use .json, .yaml, .yml or .toml"
                    ),
                )
            ],
            source,
        )
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except FileNotFoundError:
        raise _fail([TopologyIssue("file-not-found", "", f"no such file: {source}")], source) from None
    except (OSError, ValueError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise _fail([TopologyIssue("read-error", "", f"cannot read {source}: {message}")], source) from None
    if mapped is None:
        yield b""
        return
    try:
        yield mapped
    finally:
        mapped.close()


def parse_document(raw: Buffer, path: Path) -> Any:
    """Parse the bytes of a topology file in the format its extension names (see ``read_bytes``)."""
    source = str(path)
    reader = _READERS[path.suffix.lower()]
    try:
        text = str(raw, "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            [TopologyIssue("parse-error", "", f"byte {exc.start}: the file is not UTF-8 text")], source
        ) from None
    dupes: list[TopologyIssue] = []
    try:
        data = reader(text, dupes)
    except _ParseError as exc:
        raise _fail([TopologyIssue("parse-error", "", str(exc))], source) from None
    except RecursionError:  # a parser recursing past the interpreter's limit (e.g. YAML's Python loader)
        raise _fail(
            [
                TopologyIssue(
                    "parse-error", "", f"nested too deeply to read (keep nesting under {MAX_NESTING} levels)"
                )
            ],
            source,
        ) from None
    if dupes:
        raise _fail(dupes, source)
    return data
