"""The compiled file format: its constants and the one list of its arrays (``docs/compiled-format.md``).

Everything in Python that knows the layout of a compiled file reads it from here: the compiler, the
container that writes and maps the file, the engine's unpickler and the command line's sniffing of
the magic bytes. The loader that checks a file is C++ (``cpp/src/compiled_file.cpp``), which states
the same layout for the C ABI; every file written from this list must pass it (the tests hold them
together).
"""

from __future__ import annotations

import struct
from typing import Any

FORMAT_VERSION = 1
MAGIC = b"AEGISFWD"
ALIGN = 64
INT32_MAX = 2**31 - 1
# magic, format version, header length H, total file length, header CRC-32, payload CRC-32
PREFIX = struct.Struct("<8sIIQII")
PREFIX_SIZE = PREFIX.size  # 32
DISTANCE_UNITS = ("km", "ms")

I4, I8, U1, U8, F8 = "<i4", "<i8", "|u1", "<u8", "<f8"

# Id string tables: kind -> count that sizes its offsets array.
ID_KINDS: tuple[tuple[str, str], ...] = (
    ("location", "locations"),
    ("dc", "dcs"),
    ("server", "servers"),
    ("pool", "pools"),
    ("ip", "ips"),
    ("zone", "zones"),
)

# Every array of format version 1, in file order: (name, dtype, shape). A dimension is an int, a
# count name, or "count+1".
ARRAY_SPECS: tuple[tuple[str, str, tuple[Any, ...]], ...] = (
    # facts
    ("location_dc_start", I4, ("locations+1",)),
    ("location_server_start", I4, ("locations+1",)),
    ("dc_location", I4, ("dcs",)),
    ("dc_server_start", I4, ("dcs+1",)),
    ("server_dc", I4, ("servers",)),
    ("server_location", I4, ("servers",)),
    ("server_key", U8, ("servers",)),
    ("server_initial_state", U1, ("servers",)),
    ("ip_pool", I4, ("ips",)),
    ("ip_family", U1, ("ips",)),
    ("ip_prefix_length", U1, ("ips",)),
    ("ip_key", U8, ("ips",)),
    ("ip_holder_start", I4, ("ips+1",)),
    ("ip_holder_ranges", I4, ("holder_ranges", 2)),
    ("group_ip_start", I4, ("groups+1",)),
    ("group_ips", I4, ("ips",)),
    ("location_distance", F8, ("locations", "locations")),
    ("zone_pool", I4, ("zones",)),
    *(
        spec
        for kind, count in ID_KINDS
        for spec in (
            (f"{kind}_id_bytes", U1, (f"{kind}_id_bytes",)),
            (f"{kind}_id_offsets", I8, (f"{count}+1",)),
        )
    ),
    # derived
    ("nearest_order", I4, ("locations", "locations")),
    ("nearest_rank", I4, ("locations", "locations")),
    ("list_location", I4, ("lists",)),
    ("list_server_start", I4, ("lists+1",)),
    ("list_servers", I4, ("list_servers",)),
    ("list_bit_start", I8, ("lists+1",)),
    ("list_bits", U8, ("list_words",)),
    ("layout_start", I4, ("layouts+1",)),
    ("layout_location", I4, ("layout_entries",)),
    ("layout_list", I4, ("layout_entries",)),
    ("group_layout", I4, ("groups",)),
)
ARRAY_NAMES: tuple[str, ...] = tuple(name for name, _, _ in ARRAY_SPECS)
ARRAY_DTYPE: dict[str, str] = {name: dtype for name, dtype, _ in ARRAY_SPECS}

# The header's "counts": sizes of the index spaces and of the variable-length arrays.
COUNT_NAMES: tuple[str, ...] = (
    "locations",
    "dcs",
    "servers",
    "pools",
    "ips",
    "groups",
    "zones",
    "holder_ranges",
    "lists",
    "list_servers",
    "list_words",
    "layouts",
    "layout_entries",
    *(f"{kind}_id_bytes" for kind, _ in ID_KINDS),
)


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def file_length(buffer: Any) -> int:
    """The total file length the prefix of a compiled file states (the file may carry more after it)."""
    return int(PREFIX.unpack_from(buffer, 0)[3])
