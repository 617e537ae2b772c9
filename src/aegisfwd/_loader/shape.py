"""The shape pass: types, required fields, non-empty ids and coordinate ranges (pydantic v2, strict).

Unknown keys are forbidden and nothing is converted: a YAML ``NO`` that loaded as ``False`` is an
error whose message says what it loaded as and to quote it. The models' output is not used: they
only find errors with their location.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from .paths import Loc, describe

__all__ = ["shape_issues"]

_Id = Annotated[str, Field(min_length=1)]
_Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
_Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", cache_strings=False)


class _LocationShape(_Strict):
    id: _Id
    name: str | None = None
    lat: _Lat | None = None
    lon: _Lon | None = None


class _DataCenterShape(_Strict):
    id: _Id
    location: _Id
    servers: list[_Id]


class _IPShape(_Strict):
    address: str
    holders: list[_Id]


class _PoolShape(_Strict):
    id: _Id
    ips: list[_IPShape]


class _DistancesShape(_Strict):
    unit: str  # km or ms: checked below, to give its own code
    locations: list[_Id]
    matrix: list[list[Any]]  # values checked below (finite, non-negative or null: ``bad-distance``)


class _DocumentShape(_Strict):
    version: int = 1  # strict int: True and 1.0 are rejected; == 1 is checked below
    locations: list[_LocationShape]
    data_centers: list[_DataCenterShape]
    server_states: dict[_Id, Any] = {}  # values checked below, to give them the code unknown-state
    pools: list[_PoolShape]
    zones: dict[_Id, _Id] = {}
    distances: _DistancesShape | None = None


def _not_a_string(value: Any) -> str:
    """Message for a value that should have been text: what it became, why, and to quote it."""
    why = ""
    if value is None:
        why = " (an empty value, `~` or `null` in YAML)"
    elif isinstance(value, bool):
        why = " (YAML 1.1 reads unquoted yes/no/on/off/true/false, in any case, as booleans)"
    elif isinstance(value, int):
        why = " (in YAML 1.1 unquoted digits are a number, and a leading 0 makes them octal: 0123 is 83)"
    elif isinstance(value, float):
        why = " (YAML reads unquoted 1.5, 1.0e+3, .inf as numbers)"
    elif isinstance(value, (_dt.date, _dt.time)):
        why = " (an unquoted YYYY-MM-DD is a date in YAML and TOML)"
    hint = (
        ""
        if isinstance(value, (dict, list))
        else "; quote it in the file, exactly as meant, so that it stays text"
    )
    return f"expected a string, but this loaded as {describe(value)}{why}{hint}"


_KEY_NOUN = {"server_states": "state target", "zones": "zone name"}


def _shape_issue(err: ErrorDetails) -> tuple[Loc, str, str]:
    """Turn one pydantic error into (loc, code, message)."""
    typ: str = err["type"]
    loc: Loc = tuple(err["loc"])
    value = err.get("input")
    # A key error of a top-level mapping is (field, key, "[key]"). Test the whole shape, not only the
    # marker: a document may itself hold a field or key literally named "[key]".
    is_key = len(loc) == 3 and loc[0] in _KEY_NOUN and loc[2] == "[key]"
    if is_key:
        # pydantic writes a non-string key into loc as it can (False becomes 0); the input is the key.
        loc = loc[:-2] + (value,)
    field = loc[-1] if loc else None
    where = f"the {_KEY_NOUN.get(loc[0], 'key')} " if is_key else ""

    if typ == "missing":
        return loc, "missing-field", f"required field {field!r} is missing"
    if typ == "extra_forbidden":
        return (
            loc,
            "unknown-field",
            f"unknown field {field!r} (check the spelling; allowed fields are listed in docs)",
        )
    if loc == ("version",):
        return loc, "unsupported-version", f"version must be the integer 1, got {describe(value)}"
    if len(loc) == 3 and loc[0] == "locations" and field in ("lat", "lon"):
        rng = "[-90, 90]" if field == "lat" else "[-180, 180]"
        return loc, "bad-coordinate", f"{field} must be a finite number in {rng}, got {describe(value)}"
    if typ == "string_too_short":
        return loc, "empty-id", f"{where or 'an id '}must not be empty"
    if typ == "string_type":
        return loc, "wrong-type", (f"{where.strip()}: " if where else "") + _not_a_string(value)
    if typ in ("list_type", "dict_type", "model_type"):
        want = {"list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}[typ]
        return loc, "wrong-type", f"expected {want}, but this loaded as {describe(value)}"
    return loc, "wrong-type", f"{err['msg']} (got {describe(value)})"


def shape_issues(data: dict[str, Any]) -> list[tuple[Loc, str, str]]:
    """Every shape error of a document as (path, code, message), in pydantic's order."""
    try:
        _DocumentShape.model_validate(data)
    except ValidationError as exc:
        return [_shape_issue(e) for e in exc.errors(include_url=False, include_context=False)]
    return []
