"""The topology loader: file formats, every error code with its path, YAML type traps, round trips.

The fixtures under ``tests/fixtures/topologies/bad/`` hold one error class each; ``BAD_FILES`` below is
the exact list of (code, path) pairs each must report, in file order. docs/topology-format.md lists
the codes.
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aegisfwd as af
from aegisfwd._loader import ERROR_CODES, topology_from_dict, topology_to_dict
from aegisfwd._loader import checker as loader_checker

FIXTURES = Path(__file__).parent / "fixtures" / "topologies"
BAD = FIXTURES / "bad"
DOCS = Path(__file__).parent.parent / "docs" / "topology-format.md"


def issues_of(exc: pytest.ExceptionInfo[af.TopologyError]) -> list[tuple[str, str]]:
    return [(e.code, e.path) for e in exc.value.errors]


def fields(t: af.Topology) -> tuple[Any, ...]:
    """Topology has identity equality (eq=False); compare it field by field."""
    return (t.locations, t.data_centers, t.pools, t.server_states, t.zones, t.distances)


def minimal(**overrides: Any) -> dict[str, Any]:
    """A small valid document; tests change one thing at a time."""
    doc: dict[str, Any] = {
        "locations": [
            {"id": "LHR", "lat": 51.47, "lon": -0.45},
            {"id": "AMS", "lat": 52.31, "lon": 4.76},
        ],
        "data_centers": [
            {"id": "LHR01", "location": "LHR", "servers": ["lhr01-s001", "lhr01-s002"]},
            {"id": "AMS01", "location": "AMS", "servers": ["ams01-s001"]},
        ],
        "pools": [{"id": "acme", "ips": [{"address": "192.0.2.10", "holders": ["LHR01"]}]}],
    }
    doc.update(overrides)
    return doc


def errors_for(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(af.TopologyError) as exc:
        topology_from_dict(doc)
    return issues_of(exc)


# ---- the documented example in three formats -------------------------------------------------------


@pytest.fixture(scope="module")
def spec_topology() -> af.Topology:
    return af.load_topology(FIXTURES / "spec-example.yaml")


def test_spec_example_builds_the_model(spec_topology: af.Topology) -> None:
    t = spec_topology
    assert t.locations == (
        af.Location("LHR", "London", 51.47, -0.45),
        af.Location("AMS", "Amsterdam", 52.31, 4.76),
    )
    assert t.data_centers[0] == af.DataCenter("LHR01", "LHR", ("lhr01-s001", "lhr01-s002"))
    assert [dc.id for dc in t.data_centers] == ["LHR01", "LHR02", "AMS01"]
    (acme,) = t.pools
    assert acme.id == "acme"
    assert [ip.network for ip in acme.ips] == [
        ipaddress.IPv4Network("192.0.2.10/32"),
        ipaddress.IPv4Network("192.0.2.11/32"),
        ipaddress.IPv6Network("2001:db8:a::/48"),
    ]
    assert [ip.holders for ip in acme.ips] == [("LHR02",), ("ams01-s002",), ("LHR", "AMS")]
    assert [ip.address for ip in acme.ips] == ["192.0.2.10", "192.0.2.11", "2001:db8:a::/48"]
    assert t.server_states == {"lhr01-s002": "draining", "AMS01": "down"}
    assert t.zones == {"example.com": "acme", "shop.example": "acme"}
    assert t.distances == af.DistanceMatrix("ms", ("LHR", "AMS"), ((0.0, 7.1), (7.4, 0.0)))
    # Values written as integers are stored as floats.
    assert all(type(v) is float for row in t.distances.matrix for v in row)


@pytest.mark.parametrize("suffix", ["json", "toml"])
def test_spec_example_same_in_every_format(spec_topology: af.Topology, suffix: str) -> None:
    other = af.load_topology(FIXTURES / f"spec-example.{suffix}")
    assert fields(other) == fields(spec_topology)


def test_round_trip_through_to_dict(spec_topology: af.Topology, tmp_path: Path) -> None:
    doc = spec_topology.to_dict()
    again = af.Topology.from_dict(doc)
    assert fields(again) == fields(spec_topology)
    assert again.to_dict() == doc
    # to_dict is plain data: it survives JSON and YAML files unchanged.
    (tmp_path / "t.json").write_text(json.dumps(doc))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(doc))
    for name in ("t.json", "t.yaml"):
        assert fields(af.load_topology(tmp_path / name)) == fields(spec_topology)


def test_to_dict_omits_what_is_absent() -> None:
    doc = minimal(locations=[{"id": "LHR", "lat": 51, "lon": 0}, {"id": "AMS", "lat": 52, "lon": 4}])
    out = topology_to_dict(topology_from_dict(doc))
    assert set(out) == {"version", "locations", "data_centers", "pools"}
    assert out["locations"][0] == {"id": "LHR", "lat": 51.0, "lon": 0.0}


def test_yml_extension_and_upper_case(tmp_path: Path) -> None:
    text = (FIXTURES / "spec-example.yaml").read_text()
    for name in ("t.yml", "T.YAML"):
        (tmp_path / name).write_text(text)
        assert len(af.load_topology(tmp_path / name).pools[0].ips) == 3


# ---- one fixture per error class -----------------------------------------------------------

BAD_FILES: dict[str, list[tuple[str, str]]] = {
    "parse-error.yaml": [("parse-error", "")],
    "parse-error.json": [("parse-error", "")],
    "parse-error.toml": [("parse-error", "")],
    "duplicate-key.yaml": [("duplicate-key", "")],
    "duplicate-key.json": [("duplicate-key", "")],
    "unsupported-extension.ini": [("unsupported-extension", "")],
    "not-a-mapping.yaml": [("wrong-type", "")],
    "wrong-type.yaml": [
        ("wrong-type", "locations[0].id"),
        ("wrong-type", "locations[1].id"),
        ("wrong-type", "locations[2].id"),
        # The DC names "NO" quoted; the location's unquoted NO loaded as false, so there is no "NO".
        ("unknown-location", "data_centers[0].location"),
        ("wrong-type", "data_centers[0].servers[0]"),
        ("wrong-type", "pools[0].id"),
        ("wrong-type", "pools[1].ips"),
    ],
    "wrong-type.toml": [("wrong-type", "locations[0].id"), ("wrong-type", "data_centers[0].servers[1]")],
    "missing-field.yaml": [("missing-field", "data_centers[0].location"), ("missing-field", "pools")],
    "unknown-field.yaml": [
        # `long` instead of `lon`: the typo is reported, and so is the lat left without its lon.
        ("missing-coordinates", "locations[0]"),
        ("unknown-field", "locations[0].long"),
        ("unknown-field", "pools[0].ips[0].holder"),
        ("missing-field", "pools[0].ips[0].holders"),
        ("unknown-field", "zone"),
    ],
    "empty-id.yaml": [
        ("empty-id", "locations[0].id"),
        ("empty-id", "data_centers[0].servers[1]"),
        ("empty-id", 'zones[""]'),
    ],
    "unsupported-version.yaml": [("unsupported-version", "version")],
    "bad-coordinate.yaml": [
        ("bad-coordinate", "locations[0].lat"),
        ("bad-coordinate", "locations[1].lon"),
        ("bad-coordinate", "locations[2].lat"),
        ("bad-coordinate", "locations[3].lat"),
    ],
    "bad-distance-unit.yaml": [("bad-distance-unit", "distances.unit")],
    "duplicate-id.yaml": [
        ("duplicate-id", "locations[1].id"),
        ("duplicate-id", "data_centers[0].servers[1]"),
        ("duplicate-id", "data_centers[0].servers[2]"),
        ("duplicate-id", "data_centers[1].id"),
    ],
    "server-in-two-dcs.yaml": [("server-in-two-dcs", "data_centers[1].servers[0]")],
    "unknown-location.yaml": [
        ("unknown-location", "data_centers[1].location"),
        ("unknown-location", "distances.locations[1]"),
    ],
    "duplicate-pool.yaml": [("duplicate-pool", "pools[1].id")],
    "unknown-holder.yaml": [
        ("unknown-holder", "pools[0].ips[0].holders[1]"),
        ("unknown-holder", "pools[0].ips[1].holders[0]"),
    ],
    "unknown-holder.json": [("unknown-holder", "pools[0].ips[0].holders[0]")],
    "invalid-address.yaml": [("invalid-address", f"pools[0].ips[{j}].address") for j in range(6)],
    "ipv4-prefix.yaml": [
        ("ipv4-prefix", "pools[0].ips[0].address"),
        ("ipv4-prefix", "pools[0].ips[1].address"),
    ],
    "host-bits-set.yaml": [("host-bits-set", "pools[0].ips[0].address")],
    "ipv6-zone-id.yaml": [("ipv6-zone-id", "pools[0].ips[0].address")],
    "ipv4-mapped.yaml": [
        ("ipv4-mapped", "pools[0].ips[0].address"),
        ("ipv4-mapped", "pools[0].ips[1].address"),
    ],
    "duplicate-address.yaml": [
        ("duplicate-address", "pools[0].ips[2].address"),
        ("duplicate-address", "pools[1].ips[0].address"),
    ],
    "overlapping-prefix.yaml": [
        ("overlapping-prefix", "pools[1].ips[0].address"),
        ("overlapping-prefix", "pools[1].ips[1].address"),
        # initech's /32 comes last and contains both of acme's prefixes (globex's lie inside acme's).
        ("overlapping-prefix", "pools[2].ips[0].address"),
        ("overlapping-prefix", "pools[2].ips[0].address"),
    ],
    "missing-coordinates.yaml": [
        ("missing-coordinates", "locations[1]"),
        ("missing-coordinates", "locations[2]"),
    ],
    "bad-distance.yaml": [
        ("bad-distance", "distances.matrix[0][1]"),
        ("bad-distance", "distances.matrix[0][2]"),
        ("bad-distance", "distances.matrix[1][1]"),
        ("bad-distance", "distances.matrix[2][0]"),
        ("bad-distance", "distances.matrix[2][2]"),
    ],
    "incomplete-matrix.yaml": [
        ("incomplete-matrix", "distances.locations"),
        ("incomplete-matrix", "distances.locations[2]"),
        ("incomplete-matrix", "distances.matrix"),
        ("incomplete-matrix", "distances.matrix[1]"),
    ],
    "unknown-state-target.yaml": [
        ("unknown-state-target", 'server_states["lhr01-s009"]'),
        ("unknown-state-target", 'server_states["acme"]'),
    ],
    "unknown-state.yaml": [
        ("unknown-state", 'server_states["lhr01-s001"]'),
        ("unknown-state", 'server_states["LHR"]'),
        ("unknown-state", 'server_states["LHR01"]'),
    ],
    "unknown-pool.yaml": [("unknown-pool", 'zones["shop.example"]')],
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_fixture_reports_exactly(name: str) -> None:
    path = BAD / name
    with pytest.raises(af.TopologyError) as exc:
        af.load_topology(path)
    assert issues_of(exc) == BAD_FILES[name]
    assert exc.value.source == str(path)
    for issue in exc.value.errors:
        assert issue.message, issue
        assert issue.code in ERROR_CODES


def test_every_fixture_is_in_the_table() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(BAD_FILES)


def test_every_code_is_exercised_and_documented() -> None:
    exercised = {code for pairs in BAD_FILES.values() for code, _ in pairs}
    # file-not-found and read-error need no fixture: see test_file_not_found / test_read_error.
    assert exercised | {"file-not-found", "read-error"} == ERROR_CODES
    docs = DOCS.read_text()
    for code in ERROR_CODES:
        assert f"`{code}`" in docs, code


def test_messages_say_what_to_fix() -> None:
    def messages(name: str) -> dict[str, str]:
        with pytest.raises(af.TopologyError) as exc:
            af.load_topology(BAD / name)
        return {e.path: e.message for e in exc.value.errors}

    assert "first at line 9" in messages("duplicate-key.yaml")[""]
    assert "line 10, column 3" in messages("duplicate-key.yaml")[""]
    assert "line 4, column 3" in messages("parse-error.json")[""]
    assert "line 5" in messages("parse-error.yaml")[""]
    assert "line 3" in messages("parse-error.toml")[""]
    dup = messages("duplicate-id.yaml")
    assert "locations[0].id" in dup["locations[1].id"]  # names the first occurrence
    assert "data center" in dup["data_centers[0].servers[1]"]
    assert "data_centers[0].servers[1]" in messages("server-in-two-dcs.yaml")["data_centers[1].servers[0]"]
    assert "/32" in messages("ipv4-prefix.yaml")["pools[0].ips[1].address"]
    assert "2001:db8:a::/48" in messages("host-bits-set.yaml")["pools[0].ips[0].address"]
    assert "192.0.2.10" in messages("ipv4-mapped.yaml")["pools[0].ips[0].address"]
    dup_addr = messages("duplicate-address.yaml")
    assert "pools[0].ips[1]" in dup_addr["pools[0].ips[2].address"]
    assert "'acme'" in messages("overlapping-prefix.yaml")["pools[1].ips[0].address"]
    assert "'FRA'" in messages("incomplete-matrix.yaml")["distances.locations"]
    assert "'lhr01-s009'" in messages("unknown-holder.yaml")["pools[0].ips[0].holders[1]"]


# ---- all errors at once, nothing built --------------------------------------------------------


def test_many_errors_reported_together_and_nothing_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    monkeypatch.setattr(loader_checker, "Topology", lambda **kw: built.append(kw))
    doc = minimal(
        version=2,
        server_states={"ghost": "down", "lhr01-s001": "resting"},
        zones={"example.com": "nope"},
    )
    doc["locations"].append({"id": False, "lat": 1, "lon": 2})
    doc["data_centers"].append({"id": "FRA01", "location": "FRA", "servers": ["lhr01-s001"]})
    doc["pools"][0]["ips"] += [
        {"address": "192.0.2.10", "holders": ["nowhere"]},
        {"address": "10.0.0.0/8", "holders": []},
    ]
    # Listed in file order; `minimal` puts the overridden keys after `pools`.
    assert errors_for(doc) == [
        ("wrong-type", "locations[2].id"),
        ("unknown-location", "data_centers[2].location"),
        ("server-in-two-dcs", "data_centers[2].servers[0]"),
        ("duplicate-address", "pools[0].ips[1].address"),
        ("unknown-holder", "pools[0].ips[1].holders[0]"),
        ("ipv4-prefix", "pools[0].ips[2].address"),
        ("unsupported-version", "version"),
        ("unknown-state-target", 'server_states["ghost"]'),
        ("unknown-state", 'server_states["lhr01-s001"]'),
        ("unknown-pool", 'zones["example.com"]'),
    ]
    assert built == []


def test_issues_follow_the_file_order() -> None:
    # zones before pools in the file: the zone's error is listed first.
    doc = {"zones": {"a.example": "nope"}, **minimal()}
    doc["pools"][0]["ips"][0]["holders"] = ["ghost"]
    assert errors_for(doc) == [
        ("unknown-pool", 'zones["a.example"]'),
        ("unknown-holder", "pools[0].ips[0].holders[0]"),
    ]


def test_an_entry_with_a_shape_error_does_not_hide_its_other_errors() -> None:
    doc = minimal()
    doc["pools"][0]["ips"][0] = {"address": 17, "holders": ["ghost", 5]}
    assert errors_for(doc) == [
        ("wrong-type", "pools[0].ips[0].address"),
        ("unknown-holder", "pools[0].ips[0].holders[0]"),
        ("wrong-type", "pools[0].ips[0].holders[1]"),
    ]


def test_topology_error_is_a_value_error_listing_every_issue() -> None:
    with pytest.raises(ValueError, match=r"error\(s\)") as exc:
        af.load_topology(BAD / "unknown-holder.yaml")
    err = exc.value
    assert isinstance(err, af.TopologyError)
    text = str(err)
    assert text.splitlines()[0] == f"2 error(s) in {BAD / 'unknown-holder.yaml'}:"
    for issue in err.errors:
        assert f"{issue.path}: {issue.message} [{issue.code}]" in text


# ---- YAML type traps ------------------------------------------------------------------------

ONE_LOCATION = """
locations:
  - {{id: {value}, lat: 1, lon: 2}}
data_centers: []
pools: []
"""


@pytest.mark.parametrize(
    ("value", "loaded_as"),
    [
        ("NO", "the boolean false"),
        ("yes", "the boolean true"),
        ("Off", "the boolean false"),
        ("0123", "the integer 83"),
        ("1_000", "the integer 1000"),
        ("1.0e+3", "the number 1000.0"),
        ("2024-01-01", "the date/time 2024-01-01"),
        ("~", "null"),
        ("", "null"),
        ("[a]", "a list"),
    ],
)
def test_yaml_type_traps_are_errors_not_conversions(tmp_path: Path, value: str, loaded_as: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(ONE_LOCATION.format(value=value))
    with pytest.raises(af.TopologyError) as exc:
        af.load_topology(path)
    ((code, where, message),) = [tuple(e) for e in exc.value.errors]
    assert (code, where) == ("wrong-type", "locations[0].id")
    assert f"loaded as {loaded_as}" in message
    if value != "[a]":
        assert "quote it" in message


def test_quoted_yaml_values_and_yaml_1e3_stay_strings(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) needs a dot for a float, so an unquoted 1e3 is already the string "1e3".
    path = tmp_path / "t.yaml"
    path.write_text(
        'locations:\n  - {id: "NO", lat: 1, lon: 2}\n  - {id: "0123", lat: 1, lon: 3}\n'
        "  - {id: 1e3, lat: 1, lon: 4}\ndata_centers: []\npools: []\n"
    )
    assert af.load_topology(path).location_ids == ("NO", "0123", "1e3")


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "locations:\n  - &l {id: LHR, lat: 1, lon: 2}\n  - {<<: *l, id: AMS}\ndata_centers: []\npools: []\n"
    )
    assert af.load_topology(path).locations[1] == af.Location("AMS", None, 1.0, 2.0)


# ---- shape rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [True, 1.0, "1", 2, 0, None])
def test_version_must_be_the_integer_1(version: Any) -> None:
    assert errors_for(minimal(version=version)) == [("unsupported-version", "version")]


def test_version_is_optional() -> None:
    assert len(topology_from_dict(minimal()).locations) == len(
        topology_from_dict(minimal(version=1)).locations
    )


@pytest.mark.parametrize(
    ("lat", "lon", "ok"),
    [
        (90, 180, True),
        (-90, -180, True),
        (90.0001, 0, False),
        (0, 180.0001, False),
        (math.inf, 0, False),
        (0, -math.inf, False),
        (True, 0, False),
        ("1", 0, False),
    ],
)
def test_coordinate_ranges(lat: Any, lon: Any, ok: bool) -> None:
    doc = minimal()
    doc["locations"][0].update(lat=lat, lon=lon)
    if ok:
        loc = topology_from_dict(doc).locations[0]
        assert (loc.lat, loc.lon) == (float(lat), float(lon)) and type(loc.lat) is float
    else:
        assert {code for code, _ in errors_for(doc)} == {"bad-coordinate"}


def test_lists_must_be_lists_and_mappings_mappings() -> None:
    assert errors_for(minimal(locations={"id": "LHR"})) == [("wrong-type", "locations")]
    assert errors_for(minimal(zones=["example.com"])) == [("wrong-type", "zones")]
    assert errors_for(42) == [("wrong-type", "")]


def test_empty_topology_sections_and_holder_lists_are_allowed() -> None:
    doc = minimal()
    doc["pools"][0]["ips"][0]["holders"] = []  # reserved, not deployed yet
    doc["data_centers"].append({"id": "AMS02", "location": "AMS", "servers": []})
    doc["locations"].append({"id": "FRA", "lat": 50.03, "lon": 8.57})  # no DC yet
    doc["pools"].append({"id": "empty", "ips": []})
    t = topology_from_dict(doc)
    assert t.pools[0].ips[0].holders == ()
    assert t.pools[1] == af.Pool("empty", ())


def test_names_and_overlapping_holders() -> None:
    doc = minimal()
    doc["locations"][0]["name"] = "London Heathrow"
    doc["pools"][0]["ips"][0]["holders"] = ["LHR", "LHR01", "lhr01-s001"]  # nested: allowed
    t = topology_from_dict(doc)
    assert t.locations[0].name == "London Heathrow"
    assert t.pools[0].ips[0].holders == ("LHR", "LHR01", "lhr01-s001")


def test_ids_are_case_sensitive() -> None:
    doc = minimal()
    doc["locations"].append({"id": "lhr", "lat": 51.47, "lon": -0.45})
    assert topology_from_dict(doc).location_ids == ("LHR", "AMS", "lhr")
    doc["pools"][0]["ips"][0]["holders"] = ["lhr01"]
    assert errors_for(doc) == [("unknown-holder", "pools[0].ips[0].holders[0]")]


# ---- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "network", "canonical"),
    [
        ("192.0.2.10", "192.0.2.10/32", "192.0.2.10"),
        ("0.0.0.0", "0.0.0.0/32", "0.0.0.0"),
        ("2001:DB8::1", "2001:db8::1/128", "2001:db8::1"),
        ("2001:db8:0:0:0:0:0:1/128", "2001:db8::1/128", "2001:db8::1"),
        ("2001:db8:a::/48", "2001:db8:a::/48", "2001:db8:a::/48"),
        ("::/0", "::/0", "::/0"),
        ("::1.2.3.4", "::102:304/128", "::102:304"),  # IPv4-compatible (not mapped): a plain IPv6 address
        ("64:ff9b::192.0.2.1", "64:ff9b::c000:201/128", "64:ff9b::c000:201"),  # NAT64: allowed
    ],
)
def test_addresses_are_stored_as_networks(text: str, network: str, canonical: str) -> None:
    doc = minimal()
    doc["pools"][0]["ips"][0]["address"] = text
    ip = topology_from_dict(doc).pools[0].ips[0]
    assert ip.network == ipaddress.ip_network(network)
    assert ip.address == canonical


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("192.0.2.10/32", "ipv4-prefix"),
        ("192.0.2.0/24", "ipv4-prefix"),
        (" 192.0.2.10", "invalid-address"),
        ("192.0.2.256", "invalid-address"),
        ("1.2.3", "invalid-address"),
        ("2001:db8::1/64", "host-bits-set"),
        ("2001:db8::/64/1", "invalid-address"),
        ("2001:db8::/-1", "invalid-address"),
        ("2001:db8:::1", "invalid-address"),
        ("fe80::1%eth0", "ipv6-zone-id"),
        ("fe80::%1/64", "ipv6-zone-id"),
        ("::ffff:192.0.2.10", "ipv4-mapped"),
        ("::FFFF:c000:20a", "ipv4-mapped"),
        ("::ffff:0:0/96", "ipv4-mapped"),
    ],
)
def test_address_rules(text: str, code: str) -> None:
    doc = minimal()
    doc["pools"][0]["ips"][0]["address"] = text
    assert errors_for(doc) == [(code, "pools[0].ips[0].address")]


def test_duplicate_address_in_any_spelling_anywhere() -> None:
    doc = minimal()
    doc["pools"][0]["ips"] = [
        {"address": "2001:db8::1", "holders": []},
        {"address": "2001:0db8::0001/128", "holders": []},
    ]
    doc["pools"].append({"id": "globex", "ips": [{"address": "2001:DB8::1", "holders": []}]})
    assert errors_for(doc) == [
        ("duplicate-address", "pools[0].ips[1].address"),
        ("duplicate-address", "pools[1].ips[0].address"),
    ]


def test_prefix_overlap_within_one_pool_is_allowed() -> None:
    doc = minimal()
    doc["pools"][0]["ips"] = [
        {"address": "2001:db8::/32", "holders": ["LHR"]},
        {"address": "2001:db8:1::/48", "holders": ["AMS"]},
        {"address": "2001:db8:1::5", "holders": ["AMS01"]},
    ]
    assert len(topology_from_dict(doc).pools[0].ips) == 3


def test_adjacent_prefixes_of_different_pools_do_not_overlap() -> None:
    doc = minimal()
    doc["pools"][0]["ips"] = [{"address": "2001:db8::/33", "holders": []}]
    doc["pools"].append({"id": "globex", "ips": [{"address": "2001:db8:8000::/33", "holders": []}]})
    assert len(topology_from_dict(doc).pools) == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # pool
            st.integers(0, 15),  # 4 bits after 2001:db8::/32 ...
            st.integers(32, 40),  # ... under a short prefix, so that nesting is common
        ),
        min_size=1,
        max_size=12,
    )
)
def test_overlap_check_matches_brute_force(raw: list[tuple[int, int, int]]) -> None:
    """The sorted sweep against the obvious O(n^2) comparison of every pair."""
    doc = minimal(pools=[{"id": f"p{k}", "ips": []} for k in range(3)])
    entries: dict[ipaddress.IPv6Network, tuple[int, str]] = {}  # net -> (pool, path)
    for pool, bits, plen in raw:
        # strict=False: a short prefix keeps only the bits it covers (2001:db8:1000::/32 is 2001:db8::/32).
        net = ipaddress.IPv6Network(((0x20010DB8 << 96) | (bits << 92), plen), strict=False)
        if net not in entries:  # distinct networks: no duplicate-address in the mix
            ips = doc["pools"][pool]["ips"]
            entries[net] = (pool, f"pools[{pool}].ips[{len(ips)}].address")
            ips.append({"address": str(net), "holders": []})
    # (inner, outer) pairs of different pools, by brute force.
    pairs = [
        (inner, outer)
        for inner, (pi, _) in entries.items()
        for outer, (po, _) in entries.items()
        if pi != po and inner != outer and inner.subnet_of(outer)
    ]
    if not pairs:
        assert len(topology_from_dict(doc).pools) == 3
        return
    got = errors_for(doc)
    assert {code for code, _ in got} == {"overlapping-prefix"}
    reported = {path for _, path in got}
    involved = {entries[n][1] for pair in pairs for n in pair}
    assert reported <= involved
    # Every prefix that lies inside another pool's prefix is reported, at itself or at a container.
    for inner in {i for i, _ in pairs}:
        containers = {entries[o][1] for i, o in pairs if i == inner}
        assert reported & (containers | {entries[inner][1]}), inner


def test_overlap_check_scales() -> None:
    # 20k disjoint /56s plus one /40 of another pool that contains 256 of them: sorting, not O(n^2).
    ips = [{"address": f"2001:db8:{p >> 8:x}:{(p & 255) << 8:x}::/56", "holders": []} for p in range(20_000)]
    doc = minimal(
        pools=[
            {"id": "big", "ips": ips},
            {"id": "other", "ips": [{"address": "2001:db8:7::/48", "holders": []}]},
        ]
    )
    t0 = time.perf_counter()
    got = errors_for(doc)
    # Not a speed measurement (benchmarks/README.md has those): a guard against a quadratic pass,
    # which would take many minutes here; the bound is far above any loaded runner's time.
    assert time.perf_counter() - t0 < 60.0
    assert len(got) == 256 and {c for c, _ in got} == {"overlapping-prefix"}


# ---- distances ------------------------------------------------------------------------------


def with_matrix(**distances: Any) -> dict[str, Any]:
    doc = minimal(locations=[{"id": "LHR"}, {"id": "AMS"}])
    doc["distances"] = {
        "unit": "km",
        "locations": ["LHR", "AMS"],
        "matrix": [[0, 357], [357, 0]],
        **distances,
    }
    return doc


def test_matrix_replaces_coordinates_and_may_list_locations_in_any_order() -> None:
    t = topology_from_dict(with_matrix(locations=["AMS", "LHR"], matrix=[[0, 5.5], [None, 0]]))
    assert t.distances == af.DistanceMatrix("km", ("AMS", "LHR"), ((0.0, 5.5), (None, 0.0)))
    m = t.distance_matrix()
    assert m[1, 0] == 5.5 and math.isnan(m[0, 1])  # rows of the model follow `locations` order


@pytest.mark.parametrize("diagonal", [3.5, None, 0])
def test_matrix_diagonal_is_checked_but_ignored(diagonal: Any) -> None:
    t = topology_from_dict(with_matrix(matrix=[[diagonal, 357], [357, 0]]))
    assert t.distance_matrix()[0, 0] == 0.0


def test_matrix_diagonal_must_still_be_a_distance() -> None:
    assert errors_for(with_matrix(matrix=[[-1, 357], [357, 0]])) == [
        ("bad-distance", "distances.matrix[0][0]")
    ]


def test_matrix_rows_must_be_lists() -> None:
    assert errors_for(with_matrix(matrix=[[0, 357], 357])) == [("wrong-type", "distances.matrix[1]")]


def test_missing_locations_in_matrix_without_coordinates() -> None:
    doc = with_matrix(locations=["LHR"], matrix=[[0]])
    assert errors_for(doc) == [("incomplete-matrix", "distances.locations")]


def test_null_distances_means_none_given() -> None:
    doc = minimal(distances=None)
    assert topology_from_dict(doc).distances is None
    doc = minimal(locations=[{"id": "LHR"}, {"id": "AMS"}], distances=None)
    assert [c for c, _ in errors_for(doc)] == ["missing-coordinates", "missing-coordinates"]


# ---- states and zones -----------------------------------------------------------------------


def test_states_on_every_kind_of_target() -> None:
    doc = minimal(server_states={"LHR": "draining", "AMS01": "down", "lhr01-s002": "up"})
    t = topology_from_dict(doc)
    assert t.server_states == {"LHR": "draining", "AMS01": "down", "lhr01-s002": "up"}
    assert list(t.initial_states()) == [1, 0, 2]


def test_zone_names_are_kept_as_written() -> None:
    t = topology_from_dict(minimal(zones={"Example.COM": "acme", "example.com": "acme"}))
    assert t.zones == {"Example.COM": "acme", "example.com": "acme"}


# ---- files ----------------------------------------------------------------------------------


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(af.TopologyError) as exc:
        af.load_topology(tmp_path / "missing.yaml")
    assert issues_of(exc) == [("file-not-found", "")]


def test_read_error(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(af.TopologyError) as exc:
        af.load_topology(tmp_path / "dir.json")
    assert issues_of(exc) == [("read-error", "")]


def test_not_utf8_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"locations: [{id: M\xfcnchen}]\n")
    with pytest.raises(af.TopologyError) as exc:
        af.load_topology(tmp_path / "latin1.yaml")
    assert issues_of(exc) == [("parse-error", "")]
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(af.TopologyError) as exc:
        af.load_topology(tmp_path / "empty.yaml")
    assert issues_of(exc) == [("wrong-type", "")]
    assert "got null" in exc.value.errors[0].message


def test_utf8_bom_and_non_ascii_ids(tmp_path: Path) -> None:
    doc = minimal()
    doc["locations"][0]["name"] = "München"
    (tmp_path / "t.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(doc, ensure_ascii=False).encode())
    assert af.load_topology(tmp_path / "t.json").locations[0].name == "München"


# ---- speed ----------------------------------------------------------------------------------


def world_like(seed: int = 1) -> dict[str, Any]:
    """The size of the built-in world topology: 337 locations, 1000 DCs, 60k servers, 20k pools, 62k IPs."""
    rng = random.Random(seed)
    n_loc, n_dc, per_dc, n_pool = 337, 1000, 60, 20_000
    locations = [
        {"id": f"L{i:03d}", "lat": rng.uniform(-60, 70), "lon": rng.uniform(-180, 180)} for i in range(n_loc)
    ]
    dcs = [
        {
            "id": f"DC{d:04d}",
            "location": f"L{d % n_loc:03d}",
            "servers": [f"dc{d:04d}-s{k:02d}" for k in range(per_dc)],
        }
        for d in range(n_dc)
    ]
    pools, n4 = [], 0
    for p in range(n_pool):
        ips = []
        for _ in range(3 if p < 2000 else 2):
            a = 0xC6120000 + n4
            n4 += 1
            holders = [f"L{rng.randrange(n_loc):03d}" for _ in range(rng.randint(1, 4))]
            ips.append({"address": str(ipaddress.IPv4Address(a)), "holders": holders})
        ips.append({"address": f"2001:db8:{p >> 8:x}:{(p & 255) << 8:x}::/56", "holders": ["L000", "DC0001"]})
        pools.append({"id": f"pool{p:05d}", "ips": ips})
    return {
        "version": 1,
        "locations": locations,
        "data_centers": dcs,
        "server_states": {f"dc{d:04d}-s00": "draining" for d in range(0, n_dc, 7)},
        "pools": pools,
        "zones": {f"z{p}.example": f"pool{p:05d}" for p in range(n_pool)},
    }


def test_world_size_topology_loads_quickly() -> None:
    doc = world_like()
    t0 = time.perf_counter()
    t = topology_from_dict(doc)
    elapsed = time.perf_counter() - t0
    assert (len(t.locations), len(t.data_centers), len(t.server_ids), len(t.pools)) == (
        337,
        1000,
        60_000,
        20_000,
    )
    assert sum(len(p.ips) for p in t.pools) == 62_000
    # About 0.75 s on a quiet development machine (benchmarks/README.md, "Loading a topology file").
    # Not a speed measurement: a guard against a quadratic pass, far above any loaded runner's time.
    assert elapsed < 60.0, elapsed
