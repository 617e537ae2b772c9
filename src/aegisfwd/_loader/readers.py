"""Reading a topology file: JSON, YAML or TOML into plain data.

Duplicate mapping keys, which YAML and Python's JSON would otherwise resolve silently (last one
wins), are errors here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TopologyError, TopologyIssue

__all__ = ["read_document"]


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

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _ParseError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _toml_load(text: str, issues: list[TopologyIssue]) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(text)  # duplicate keys are already an error in TOML
    except tomllib.TOMLDecodeError as exc:
        raise _ParseError(str(exc)) from None  # the message carries "(at line L, column C)"


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
    source = str(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
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
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail([TopologyIssue("file-not-found", "", f"no such file: {source}")], source) from None
    except OSError as exc:
        raise _fail(
            [TopologyIssue("read-error", "", f"cannot read {source}: {exc.strerror or exc}")], source
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            [TopologyIssue("parse-error", "", f"byte {exc.start}: the file is not UTF-8 text")], source
        ) from None
    dupes: list[TopologyIssue] = []
    try:
        data = reader(text, dupes)
    except _ParseError as exc:
        raise _fail([TopologyIssue("parse-error", "", str(exc))], source) from None
    if dupes:
        raise _fail(dupes, source)
    return data
