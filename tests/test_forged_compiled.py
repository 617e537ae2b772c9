"""Forged compiled files: derived tables that disagree with the facts, CRCs recomputed so they load.

The engine takes its candidate servers from the derived tables (group -> layout -> list -> servers)
and its source IP from the facts (which server holds which IP). A forged file whose derived tables
lie would make it answer a server with an IP that server does not hold, or a forwarding tier with
no IP at all. The C++ validator cross-checks them at load (cpp/src/crosscheck.cpp); every forgery
here must be a ``CompiledFileError`` naming the array and row, from ``load_compiled`` and from an
engine built straight on the arrays.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aegisfwd as af
from aegisfwd import AegisIP, CompiledTopology, DataCenter, Location, Pool, Topology

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from _invariants import check_batch


def ip(text: str, *holders: str) -> AegisIP:
    return AegisIP(ipaddress.ip_network(text), tuple(holders))


def small_topology() -> Topology:
    """Two locations; pool acme: two IPv4 addresses held by one server each, an IPv6 range
    everywhere; pool beta: one IPv4 address held by a whole DC."""
    return Topology(
        locations=(
            Location("LHR", "London", 51.47, -0.45),
            Location("AMS", "Amsterdam", 52.31, 4.76),
            Location("EMPTY", "No DC here", 48.35, 11.79),
        ),
        data_centers=(
            DataCenter("LHR01", "LHR", ("lhr01-s001", "lhr01-s002")),
            DataCenter("LHR02", "LHR", ("lhr02-s001",)),
            DataCenter("AMS01", "AMS", ("ams01-s001", "ams01-s002")),
        ),
        pools=(
            Pool(
                "acme",
                (
                    ip("192.0.2.10", "LHR02"),
                    ip("192.0.2.11", "ams01-s002"),
                    ip("2001:db8:a::/48", "LHR", "AMS"),
                ),
            ),
            Pool("beta", (ip("198.51.100.1", "LHR01"),)),
        ),
    )


def list_bits(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """list_bits recomputed from list_servers (the Python loader checks that they agree)."""
    words = []
    loc_start = arrays["location_server_start"]
    for c, m in enumerate(arrays["list_location"].tolist()):
        first, end = int(loc_start[m]), int(loc_start[m + 1])
        w = np.zeros((end - first + 63) // 64, dtype=np.uint64)
        for s in arrays["list_servers"][arrays["list_server_start"][c] : arrays["list_server_start"][c + 1]]:
            w[(int(s) - first) // 64] |= np.uint64(1) << np.uint64((int(s) - first) % 64)
        words.append(w)
    return np.concatenate(words) if words else np.zeros(0, np.uint64)


def forge(c: CompiledTopology, change: Callable[[dict[str, np.ndarray]], Any]) -> bytes:
    """Bytes of ``c`` with arrays edited by ``change``; counts, list bits and CRCs made consistent."""
    arrays = {name: np.array(a) for name, a in c.arrays.items()}
    change(arrays)
    try:
        arrays["list_bits"] = list_bits(arrays)
    except (IndexError, ValueError):  # lists out of any location: the loader refuses them anyway
        pass
    counts = dict(c.counts)
    counts["holder_ranges"] = int(arrays["ip_holder_ranges"].shape[0])
    counts["list_servers"] = int(arrays["list_servers"].shape[0])
    counts["list_words"] = int(arrays["list_bits"].shape[0])
    return CompiledTopology(
        arrays, counts=counts, meta=c.meta, distance_unit=c.distance_unit, hash_scheme=c.hash_scheme
    ).to_bytes()


@pytest.fixture(scope="module")
def compiled() -> CompiledTopology:
    c = small_topology().compile()
    # The layout this file's forgeries rely on (servers: lhr01-s001 0, lhr01-s002 1, lhr02-s001 2,
    # ams01-s001 3, ams01-s002 4; group 0 = acme/IPv4, 1 = acme/IPv6, 2 = beta/IPv4).
    assert c["list_servers"].tolist() == [2, 4, 0, 1, 2, 3, 4, 0, 1]
    assert c["group_layout"].tolist() == [0, 1, 2, -1]
    return c


def _server_without_the_ip(a: dict[str, np.ndarray]) -> None:
    a["list_servers"][0] = 0  # acme/IPv4 in LHR: lhr01-s001 instead of lhr02-s001 (holds no acme IPv4)


def _holders_removed(a: dict[str, np.ndarray]) -> None:
    # The two acme IPv4 addresses lose their holders; the layout still sends requests to servers.
    a["ip_holder_start"] = np.array([0, 0, 0, 1, 2], dtype=np.int32)
    a["ip_holder_ranges"] = a["ip_holder_ranges"][2:].copy()


def _layout_of_another_group(a: dict[str, np.ndarray]) -> None:
    a["group_layout"][0] = 2  # acme/IPv4 (lhr02-s001, ams01-s002) given beta/IPv4's layout (LHR01)


def _layout_shared_by_unequal_groups(a: dict[str, np.ndarray]) -> None:
    a["group_layout"][2] = 0  # beta/IPv4 (held by LHR01) given acme/IPv4's layout as well


def _holder_left_out(a: dict[str, np.ndarray]) -> None:
    # acme/IPv6 in LHR lists only two of the three holders (list 2: [0, 1, 2] -> [0, 1, 1]) ...
    a["list_servers"] = np.delete(a["list_servers"], 4)
    a["list_server_start"][3:] -= 1


def _no_layout(a: dict[str, np.ndarray]) -> None:
    a["group_layout"][0] = -1  # fails closed, but the file contradicts itself: refuse it too


FORGERIES = [
    (
        "server without the IP",
        _server_without_the_ip,
        r"array 'list_servers' row 0: server 0 of list 0 .*holds no IP of group 0",
    ),
    (
        "holders removed",
        _holders_removed,
        r"array 'group_layout' row 0: group 0 has layout 0 but no server holds",
    ),
    (
        "layout of another group",
        _layout_of_another_group,
        r"array 'list_servers' row 7: server 0 of list 4 .*holds no IP of group 0",
    ),
    (
        "layout shared by unequal groups",
        _layout_shared_by_unequal_groups,
        r"array 'group_layout' row 2: group 2 shares layout 0 with group 0 but their IPs are held by different servers",
    ),
    (
        "holder left out",
        _holder_left_out,
        r"array 'list_servers' row 2: list 2 \(location 0, group 1\) leaves out server 2",
    ),
    ("no layout", _no_layout, r"array 'group_layout' row 0: group 0 has no layout \(-1\)"),
]


@pytest.mark.parametrize(("change", "match"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES])
def test_forged_derived_tables_are_refused(
    compiled: CompiledTopology, change: Any, match: str, tmp_path: Path
) -> None:
    data = forge(compiled, change)
    path = tmp_path / "forged.aegis"
    path.write_bytes(data)
    with pytest.raises(af.CompiledFileError, match=match):
        af.load_compiled(path)
    with pytest.raises(af.CompiledFileError, match=match):
        CompiledTopology.from_bytes(data)


@pytest.mark.parametrize(("change", "match"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES])
def test_engine_on_forged_arrays_is_refused(compiled: CompiledTopology, change: Any, match: str) -> None:
    """An engine built on arrays that never went through load_compiled validates them itself."""
    arrays = {name: np.array(a) for name, a in compiled.arrays.items()}
    change(arrays)
    forged = CompiledTopology(
        arrays,
        counts=compiled.counts,
        meta=compiled.meta,
        distance_unit=compiled.distance_unit,
        hash_scheme=compiled.hash_scheme,
    )
    with pytest.raises(af.CompiledFileError, match=match):
        af.Engine(forged)


def test_the_unforged_file_holds_the_guarantee(compiled: CompiledTopology) -> None:
    c = CompiledTopology.from_bytes(compiled.to_bytes())
    check_batch(c, af.Engine(c), af.Engine(small_topology(), backend="reference"))


_DERIVED = [
    "list_servers",
    "list_location",
    "layout_location",
    "layout_list",
    "group_layout",
    "list_server_start",
    "layout_start",
    "ip_holder_ranges",
    "group_ips",
    "nearest_order",
]


@given(
    name=st.sampled_from(_DERIVED),
    row=st.integers(min_value=0, max_value=50),
    value=st.integers(min_value=-2, max_value=8),
)
def test_any_single_edit_is_refused_or_harmless(name: str, row: int, value: int) -> None:
    """Whatever one int32 of a derived table (or of the holder facts) becomes: the file is refused,
    or every answer is still a (server, IP) pair the facts support, and both engines agree."""
    c = _SMALL
    flat = c[name].reshape(-1)
    if row >= flat.shape[0] or int(flat[row]) == value:
        return

    def change(a: dict[str, np.ndarray]) -> None:
        a[name].reshape(-1)[row] = value

    try:
        loaded = CompiledTopology.from_bytes(forge(c, change))
        engine = af.Engine(loaded)
    except af.CompiledFileError:
        return
    check_batch(loaded, engine)


_SMALL = small_topology().compile()
