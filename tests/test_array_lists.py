"""One list of the compiled arrays: every place that restates it agrees with ``compiled._format``.

``ARRAY_SPECS`` (name, dtype, shape) is the source of truth. Restated, for reasons of language or
audience, in: ``docs/compiled-format.md`` (the tables a reader sees), ``TablesView`` and
``kTableArrayNames`` in ``cpp/include/aegisfwd/tables.hpp`` (what the C++ engine reads), and the
``take<T>(arrays, "name")`` calls of ``cpp/bindings/register_engine.cpp`` (how the binding fills the
view). This test reads those files as text and holds each to the specs; the compiled-file loader's
own schema (``cpp/src/compiled_file.cpp``) is asked through ``_core.compiled.array_schema``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aegisfwd.compiled._format import ARRAY_SPECS, ID_KINDS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "compiled-format.md"
TABLES_HPP = ROOT / "cpp" / "include" / "aegisfwd" / "tables.hpp"
BINDING = ROOT / "cpp" / "bindings" / "register_engine.cpp"

SPECS = {name: (dtype, dims) for name, dtype, dims in ARRAY_SPECS}
DOC_DTYPE = {"int32": "<i4", "int64": "<i8", "uint8": "|u1", "uint64": "<u8", "float64": "<f8"}
CPP_DTYPE = {
    "std::int32_t": "<i4",
    "std::int64_t": "<i8",
    "std::uint8_t": "|u1",
    "std::uint64_t": "<u8",
    "double": "<f8",
}
# The doc's shape letters, and the counts of variable-length arrays it writes as "*".
LETTER = {
    "L": "locations",
    "D": "dcs",
    "S": "servers",
    "P": "pools",
    "I": "ips",
    "G": "groups",
    "Z": "zones",
    "R": "holder_ranges",
    "C": "lists",
    "Y": "layouts",
}
VARIABLE = {"list_servers", "list_words", "layout_entries"}
# Arrays the C++ engine does not read (ids and zones are Python's; the bitsets serve the Python
# checks and other readers of the file). A new array must be added here or to TablesView.
NOT_READ_BY_CPP = {"ip_prefix_length", "zone_pool", "list_bit_start", "list_bits"} | {
    name for kind, _ in ID_KINDS for name in (f"{kind}_id_bytes", f"{kind}_id_offsets")
}


def doc_shape(text: str) -> tuple[str, ...]:
    out = []
    for part in text.replace("×", "x").split("x"):
        part = part.strip()
        if part == "*":
            out.append("*")
        elif part.isdigit():
            out.append(part)
        else:
            letter, _, plus = part.partition("+")
            out.append(LETTER[letter] + (f"+{plus}" if plus else ""))
    return tuple(out)


def spec_shape(dims: tuple[object, ...]) -> tuple[str, ...]:
    return tuple("*" if d in VARIABLE else str(d) for d in dims)


def doc_tables() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| ([^|]+) \|", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    return {name: (DOC_DTYPE[dtype], doc_shape(shape)) for name, dtype, shape in rows}


def view_members() -> list[tuple[str, str]]:
    text = TABLES_HPP.read_text(encoding="utf-8")
    body = text[text.index("struct TablesView {") : text.index("TableCounts validate() const;")]
    return [(name, CPP_DTYPE[ctype]) for ctype, name in re.findall(r"ArrayView<([\w:]+)> (\w+);", body)]


def test_the_doc_tables_list_every_array_with_its_dtype_and_shape() -> None:
    documented = doc_tables()
    id_tables = {name for kind, _ in ID_KINDS for name in (f"{kind}_id_bytes", f"{kind}_id_offsets")}
    # The id string tables are described in prose (next test); every other array is in a table.
    assert set(documented) == set(SPECS) - id_tables
    for name, (dtype, dims) in SPECS.items():
        if name not in id_tables:
            assert documented[name] == (dtype, spec_shape(dims)), name


def test_the_id_tables_prose_names_their_dtypes() -> None:
    prose = DOC.read_text(encoding="utf-8")
    assert "`<kind>_id_bytes` (uint8" in prose and "`<kind>_id_offsets` (int64, n+1" in prose
    for kind, count in ID_KINDS:
        assert f"`{kind}`" in prose
        assert SPECS[f"{kind}_id_offsets"][1] == (f"{count}+1",)
        assert SPECS[f"{kind}_id_bytes"][0] == "|u1" and SPECS[f"{kind}_id_offsets"][0] == "<i8"


def test_tables_view_reads_the_specs_arrays_with_their_dtypes() -> None:
    members = view_members()
    assert len({name for name, _ in members}) == len(members)
    for name, dtype in members:
        assert name in SPECS, f"TablesView reads {name!r}, which the format does not have"
        assert SPECS[name][0] == dtype, name
    assert {name for name, _ in members} | NOT_READ_BY_CPP == set(SPECS)
    assert not {name for name, _ in members} & NOT_READ_BY_CPP


def test_tables_view_order_is_the_spec_order() -> None:
    order = [name for name, _, _ in ARRAY_SPECS]
    names = [name for name, _ in view_members()]
    assert names == sorted(names, key=order.index)


def test_the_names_list_restates_tables_view() -> None:
    text = TABLES_HPP.read_text(encoding="utf-8")
    block = text[
        text.index("kTableArrayNames[] = {") : text.index("};", text.index("kTableArrayNames[] = {"))
    ]
    assert re.findall(r'"(\w+)"', block) == [name for name, _ in view_members()]


def test_the_binding_fills_every_member_with_its_dtype() -> None:
    calls = re.findall(
        r"t\.(\w+) = take<([\w:]+)>\(arrays, \"(\w+)\", k\);", BINDING.read_text(encoding="utf-8")
    )
    assert calls, "the binding's take<T> calls changed shape: update this test"
    for member, _ctype, key in calls:
        assert member == key
    assert [(member, CPP_DTYPE[ctype]) for member, ctype, _ in calls] == view_members()


@pytest.mark.parametrize("name", sorted(NOT_READ_BY_CPP))
def test_arrays_left_to_python_exist(name: str) -> None:
    assert name in SPECS


def test_the_cpp_loader_reads_the_arrays_the_python_writer_writes() -> None:
    """The compiled-file loader (cpp/src/compiled_file.cpp, also the C ABI's) states the format's
    arrays and counts itself; they must be the writer's, name for name, in file order."""
    from aegisfwd import _core
    from aegisfwd.compiled._format import COUNT_NAMES

    want = [(name, dtype, tuple(str(d) for d in dims)) for name, dtype, dims in ARRAY_SPECS]
    assert _core.compiled.array_schema() == want
    assert _core.compiled.count_names() == list(COUNT_NAMES)
