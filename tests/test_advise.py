"""Placement advice: known answers on hand-built topologies and logs, the analytic move evaluation
held to the compiled engine, the MILP optimum against the greedy, and the advised figures against
``compare`` on the patched topology."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aegisfwd as af
from aegisfwd.advise import (
    Layout,
    Move,
    MoveError,
    Objective,
    PoolGroups,
    PoolState,
    ScopeEngine,
    aggregate,
    apply_moves,
)
from aegisfwd.cli import main

# Five locations on the equator, 1,000 km apart or so: A B C D E from west to east.
LOCS = ["A", "B", "C", "D", "E"]


def topo_doc(
    holders: dict[str, list[str]] | None = None,
    *,
    extra_ips: int = 0,
    dcs_per_loc: int = 1,
    servers_per_dc: int = 2,
    states: dict[str, str] | None = None,
) -> dict:
    holders = holders if holders is not None else {"192.0.2.10": ["A"]}
    dcs = []
    for _k, loc in enumerate(LOCS):
        for d in range(dcs_per_loc):
            dc = f"{loc}{d + 1}"
            dcs.append(
                {"id": dc, "location": loc, "servers": [f"{dc.lower()}-s{j}" for j in range(servers_per_dc)]}
            )
    ips = [{"address": a, "holders": h} for a, h in holders.items()]
    ips += [{"address": f"198.51.100.{i + 1}", "holders": ["E"]} for i in range(extra_ips)]
    doc = {
        "locations": [{"id": loc, "lat": 0.0, "lon": 10.0 * k} for k, loc in enumerate(LOCS)],
        "data_centers": dcs,
        "pools": [
            {"id": "p", "ips": ips},
            {"id": "q", "ips": [{"address": "203.0.113.1", "holders": ["A"]}]},
        ],
        "zones": {"p.example": "p", "q.example": "q"},
    }
    if states:
        doc["server_states"] = states
    return doc


def log_table(
    rows_per_colo: dict[str, int],
    zone: str = "p.example",
    *,
    seed: int = 0,
    family: int = 4,
    timed: bool = True,
) -> pa.Table:
    rng = np.random.default_rng(seed)
    colos, zones = [], []
    for colo, n in rows_per_colo.items():
        colos += [colo] * n
        zones += [zone] * n
    n = len(colos)
    origin = "192.0.2.200" if family == 4 else "2001:db8::1"
    cols = {
        "EdgeColoCode": colos,
        "ZoneName": zones,
        "OriginIP": [origin] * n,
        "ClientIP": [f"10.0.{i // 250}.{i % 250}" for i in range(n)],
        "ClientSrcPort": rng.integers(1024, 65535, n).tolist(),
    }
    if timed:
        cols["EdgeStartTimestamp"] = (1_700_000_000_000 + np.arange(n) * 10).tolist()
        cols["OriginResponseDurationMs"] = [50] * n
    return pa.table(cols)


def test_best_move_is_where_the_traffic_is() -> None:
    topo = af.Topology.from_dict(topo_doc())
    log = log_table({"D": 900, "B": 100})
    a = af.advise(log, topo, pools=["p"], steps=1)
    assert len(a.moves) == 1
    m = a.moves[0]
    assert (m.move.kind, m.move.location, m.move.address, m.move.holders) == (
        "add",
        "D",
        "192.0.2.10",
        ("D",),
    )
    # D's 900 rows were REMOTE (to A) and become LOCAL; B's stay REMOTE to A.
    assert m.tier_delta() == {
        "LOCAL": 900,
        "SAME_DC": 0,
        "SAME_LOCATION": 0,
        "REMOTE": -900,
        "UNAVAILABLE": 0,
    }
    assert m.before.tiers["REMOTE"] == 1000
    assert m.after.mean_distance < m.before.mean_distance
    assert a.gaps and a.gaps[0].gap == pytest.approx(0.0)  # one pool: the MILP ran, greedy is optimal


def test_second_step_and_milp_equal_greedy() -> None:
    topo = af.Topology.from_dict(topo_doc())
    log = log_table({"E": 500, "C": 300, "B": 50})
    a = af.advise(log, topo, pools=["p"], steps=2, exact=True)
    assert [m.move.location for m in a.moves] == ["E", "C"]
    assert [m.rank for m in a.moves] == [1, 2]
    (gap,) = a.gaps
    assert gap.gap == pytest.approx(0.0, abs=1e-12)
    assert sorted(gap.optimal_locations) == ["C", "E"]
    assert a.moves[-1].after.tiers == {
        "LOCAL": 800,
        "SAME_DC": 0,
        "SAME_LOCATION": 0,
        "REMOTE": 50,
        "UNAVAILABLE": 0,
    }


def test_forwarded_objective_picks_the_busiest_location() -> None:
    topo = af.Topology.from_dict(topo_doc())
    # B is close to A (little distance to save) but has the most rows.
    log = log_table({"B": 700, "E": 300})
    forwarded = af.advise(log, topo, pools=["p"], steps=1, objective="forwarded")
    assert forwarded.moves[0].move.location == "B"
    mean = af.advise(log, topo, pools=["p"], steps=1, objective="mean")
    # Mean distance: B saves 700 x ~1,112 km, E saves 300 x ~4,448 km.
    assert mean.moves[0].move.location == "E"
    assert forwarded.gaps[0].gap == pytest.approx(0.0)


def test_p95_objective_and_flow_weights() -> None:
    topo = af.Topology.from_dict(topo_doc())
    log = log_table({"E": 60, "B": 940})
    a = af.advise(log, topo, pools=["p"], steps=1, objective="p95", weight="flows")
    # The p95 is set by E's rows (6 % of flows, the farthest): only holding at E lowers it.
    assert a.moves[0].move.location == "E"
    assert a.moves[0].after.p95_distance < a.moves[0].before.p95_distance
    assert a.counts.flows_counted and int(a.counts.flows.sum()) == 1000
    assert a.gaps == []  # no MILP for the p95


def test_dc_level_move_and_extend() -> None:
    # Two DCs per location; traffic arrives only in D2: only D2 becomes a holder.
    topo = af.Topology.from_dict(topo_doc(dcs_per_loc=2))
    log = pa.table(
        {
            "EdgeColoCode": ["D2"] * 100,
            "ZoneName": ["p.example"] * 100,
            "OriginIP": ["192.0.2.200"] * 100,
            "ClientIP": [f"10.0.0.{i}" for i in range(100)],
            "ClientSrcPort": list(range(1000, 1100)),
        }
    )
    a = af.advise(log, topo, pools=["p"], steps=1)
    assert a.moves[0].move.holders == ("D2",)
    assert a.moves[0].tier_delta()["LOCAL"] == 100
    # Held at one server of A1 only: traffic in A1 and A2 -> extend at A with both DCs.
    topo2 = af.Topology.from_dict(topo_doc({"192.0.2.10": ["a1-s0"]}, dcs_per_loc=2))
    log2 = pa.table(
        {
            "EdgeColoCode": ["A1"] * 50 + ["A2"] * 50,
            "ZoneName": ["p.example"] * 100,
            "OriginIP": ["192.0.2.200"] * 100,
            "ClientIP": [f"10.0.0.{i}" for i in range(100)],
            "ClientSrcPort": list(range(1000, 1100)),
        }
    )
    b = af.advise(log2, topo2, pools=["p"], steps=1, objective="forwarded")
    m = b.moves[0].move
    assert (m.kind, m.location, m.holders) == ("extend", "A", ("A",))
    assert b.moves[0].after.tiers["LOCAL"] == 100


def test_four_location_limit_swap_and_new_address() -> None:
    full = {"192.0.2.10": ["A", "B", "C", "D"]}
    topo = af.Topology.from_dict(topo_doc(full))
    # E has the traffic; B served nothing (its rows are none), so B is given up.
    log = log_table({"E": 400, "A": 10, "C": 10, "D": 10})
    swap = af.advise(log, topo, pools=["p"], steps=1, new_addresses=0)
    m = swap.moves[0].move
    assert (m.kind, m.location, m.removed_location) == ("swap", "E", "B")
    assert {(u.address, u.location) for u in swap.unused_holders} == {("192.0.2.10", "B")}
    new = af.advise(log, topo, pools=["p"], steps=1, new_addresses=1)
    n = new.moves[0].move
    assert (n.kind, n.address, n.location) == ("new-address", "192.0.2.1", "E")
    given = af.advise(log, topo, pools=["p"], steps=1, addresses=["198.51.100.77"])
    assert given.moves[0].move.address == "198.51.100.77"
    patched = new.patched()
    assert [ip.address for ip in patched.pools[0].ips][-1] == "192.0.2.1"


def test_no_move_when_nothing_improves() -> None:
    topo = af.Topology.from_dict(
        topo_doc({"192.0.2.10": ["A", "B", "C", "D", "E"][:4]} | {"192.0.2.11": ["E"]})
    )
    a = af.advise(log_table({"A": 10, "E": 10}), topo, pools=["p"], steps=3)
    assert a.moves == []


def test_concurrency_figures_and_advice() -> None:
    topo = af.Topology.from_dict(topo_doc())
    n = 200
    log = log_table({"D": n})
    # Every connection overlaps every other: the peak is n on the one address.
    log = log.set_column(
        log.schema.get_field_index("EdgeStartTimestamp"),
        "EdgeStartTimestamp",
        pa.array([1_700_000_000_000] * n),
    )
    log = log.set_column(
        log.schema.get_field_index("OriginResponseDurationMs"),
        "OriginResponseDurationMs",
        pa.array([10_000] * n),
    )
    a = af.advise(log, topo, pools=["p"], steps=1, threshold=50 / 40_000)
    assert a.base["p"].peak == n
    assert a.moves[0].after.peak == n
    (c,) = a.concurrency
    assert (c.egress_ip, c.origin, c.peak, c.addresses_needed, c.locations) == (
        "192.0.2.10",
        "192.0.2.200:443",
        n,
        4,
        ["A"],
    )


def _random_doc(rng: np.random.Generator) -> dict:
    n_loc = int(rng.integers(3, 7))
    locs = [f"L{i}" for i in range(n_loc)]
    dcs, servers, states = [], [], {}
    for _i, loc in enumerate(locs):
        for d in range(int(rng.integers(1, 3))):
            dc = f"{loc}D{d}"
            ss = [f"{dc}s{j}".lower() for j in range(int(rng.integers(1, 4)))]
            dcs.append({"id": dc, "location": loc, "servers": ss})
            servers += ss
    for s in servers:
        u = rng.random()
        if u < 0.15:
            states[s] = "down" if u < 0.07 else "draining"
    names = locs + [d["id"] for d in dcs] + servers
    ips = []
    for k in range(int(rng.integers(0, 4))):
        hs = sorted({names[int(i)] for i in rng.integers(0, len(names), int(rng.integers(0, 3)))})
        ips.append({"address": f"192.0.2.{k + 1}", "holders": hs})
    matrix = [
        [
            None if (i != j and rng.random() < 0.1) else float(rng.integers(0, 50) if i != j else 0)
            for j in range(n_loc)
        ]
        for i in range(n_loc)
    ]
    return {
        "locations": [{"id": loc} for loc in locs],
        "data_centers": dcs,
        "pools": [{"id": "p", "ips": ips}],
        "server_states": states,
        "distances": {"unit": "ms", "locations": locs, "matrix": matrix},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), metric=st.sampled_from(["forwarded", "mean", "p95"]))
def test_analytic_moves_equal_the_engine(seed: int, metric: str) -> None:
    """PoolState.decide and candidate_values against Engine.decide_batch on the patched topology,
    on random topologies (states, partial holders, unreachable pairs, equal distances)."""
    rng = np.random.default_rng(seed)
    topo = af.Topology.from_dict(_random_doc(rng))
    engine = af.Engine(topo)
    layout = Layout(engine.compiled)
    servers = np.arange(len(topo.server_ids))
    weights = rng.integers(1, 20, servers.shape[0]).astype(float)
    groups = PoolGroups.select(layout, servers, weights, weights.astype(np.int64), servers)
    holders = {ip.address: ip.holders for ip in topo.pools[0].ips}
    state = PoolState(layout, layout.ipv4_addresses(0, holders))
    decided = state.decide(groups)
    r = engine.decide_batch(
        servers,
        np.zeros_like(servers),
        np.full(servers.shape[0], 4, np.uint8),
        np.zeros(servers.shape[0], np.uint64),
    )
    assert decided.tier.tolist() == np.asarray(r.tier).tolist()
    np.testing.assert_array_equal(decided.distance, np.asarray(r.distance))
    obj = Objective(metric)
    candidates = np.flatnonzero(layout.location_up > 0)
    values = state.candidate_values(groups, decided, obj, candidates)
    for loc, value in zip(candidates.tolist(), values, strict=True):
        dcs = state.move_dcs(groups, loc)
        names = tuple(layout.dc_ids[d] for d in dcs)
        if state.addresses:
            patched = apply_moves(
                topo, [Move("extend", "p", state.addresses[0].address, layout.location_ids[loc], names)]
            )
        else:
            patched = apply_moves(
                topo, [Move("new-address", "p", "198.51.100.1", layout.location_ids[loc], names)]
            )
        r2 = af.Engine(patched).decide_batch(
            servers,
            np.zeros_like(servers),
            np.full(servers.shape[0], 4, np.uint8),
            np.zeros(servers.shape[0], np.uint64),
        )
        tier = np.asarray(r2.tier)
        dist = np.asarray(r2.distance)
        cost = np.where(tier == 4, layout.unavailable_cost, dist)
        want = obj.value(weights, tier == 0, cost)
        assert value == pytest.approx(want, rel=1e-12, abs=1e-9), (loc, names)


def test_compare_equivalence(tmp_path) -> None:
    """Apply the top advised move with --patch; compare old and patched topology on the same log:
    the advised tier changes and distance change are compare's."""
    rng = np.random.default_rng(7)
    doc = topo_doc(
        {"192.0.2.10": ["A", "b1-s0"], "192.0.2.11": ["c1-s1"]},
        extra_ips=0,
        dcs_per_loc=2,
        servers_per_dc=3,
        states={"d1-s0": "down", "E2": "draining"},
    )
    topo_path = tmp_path / "topo.yaml"
    topo_path.write_text(yaml.safe_dump(doc))
    colos = rng.choice(
        ["A1", "B", "C2", "D", "E1", "E2", "B2"], size=3000, p=[0.1, 0.2, 0.1, 0.25, 0.15, 0.1, 0.1]
    )
    zones = rng.choice(["p.example", "q.example"], size=3000, p=[0.8, 0.2])
    fam = rng.random(3000) < 0.85
    log = pa.table(
        {
            "EdgeColoCode": colos.tolist(),
            "ZoneName": zones.tolist(),
            "OriginIP": np.where(fam, "192.0.2.200", "2001:db8::5").tolist(),
            "ClientIP": [f"10.1.{i // 200}.{i % 200}" for i in range(3000)],
            "ClientSrcPort": rng.integers(1024, 65535, 3000).tolist(),
            "EdgeStartTimestamp": (1_700_000_000_000 + rng.integers(0, 5000, 3000)).tolist(),
            "OriginResponseDurationMs": rng.integers(1, 400, 3000).tolist(),
        }
    )
    log_path = tmp_path / "log.parquet"
    pq.write_table(log, log_path)
    patch = tmp_path / "patched.yaml"
    res = CliRunner().invoke(
        main,
        [
            "advise",
            str(log_path),
            "-t",
            str(topo_path),
            "--zone",
            "p.example",
            "--steps",
            "1",
            "--json",
            "--patch",
            str(patch),
        ],
    )
    assert res.exit_code == 0, res.output
    advice = json.loads(res.stdout)
    (move,) = advice["moves"]
    cmp = af.compare(str(log_path), str(topo_path), str(patch))
    change = cmp.diff.tier_change()
    for tier, delta in move["tier_delta_rows"].items():
        assert change.get(tier, {}).get("change", 0) == delta, tier
    assert cmp.a.tiers_by_pool["p"] == {k: v for k, v in move["before"]["tiers"].items() if v}
    assert cmp.b.tiers_by_pool["p"] == {k: v for k, v in move["after"]["tiers"].items() if v}
    assert cmp.diff.distance_b - cmp.diff.distance_a == pytest.approx(move["distance_sum_delta"])
    assert cmp.diff.moved_by_pool.keys() <= {"p"}
    # the concurrency after the move is what evaluate folds on the patched topology
    ev = af.evaluate(str(log_path), str(patch))
    pool_ips = {ip["address"] for ip in yaml.safe_load(patch.read_text())["pools"][0]["ips"]}
    peaks = [p for p in ev.summary.concurrency.peaks() if p["egress_ip"] in pool_ips]
    assert move["peak_concurrency_after"] == peaks[0]["peak"]


def test_aggregate_counts_match_evaluate() -> None:
    topo = af.Topology.from_dict(topo_doc())
    log = log_table({"D": 30, "B": 20, "A": 5})
    log = pa.concat_tables([log, log_table({"C": 7}, zone="nope.example"), log_table({"E": 3}, family=6)])
    c = aggregate(log, topo, count_flows=True)
    ev = af.evaluate(log, topo)
    assert c.rows_decided == ev.summary.rows_decided
    assert c.rows_rejected == ev.summary.rejects
    assert c.rows_in == ev.summary.rows_in
    assert int(c.flows.sum()) == c.rows_decided  # every client address and port differs here


def test_moves_are_checked() -> None:
    topo = af.Topology.from_dict(topo_doc())
    with pytest.raises(MoveError, match="unknown pool"):
        apply_moves(topo, [Move("add", "zz", "192.0.2.10", "B", ("B",))])
    with pytest.raises(MoveError, match="unknown holder"):
        apply_moves(topo, [Move("add", "p", "192.0.2.10", "B", ("B9",))])
    with pytest.raises(MoveError, match="already in the topology"):
        apply_moves(topo, [Move("new-address", "p", "203.0.113.1", "B", ("B",))])
    with pytest.raises(MoveError, match="no address"):
        apply_moves(topo, [Move("extend", "p", "192.0.2.99", "B", ("B",))])
    t2 = apply_moves(topo, [Move("add", "p", "192.0.2.10", "B", ("B1",))])
    assert t2.pools[0].ips[0].holders == ("A", "B1")
    assert topo.pools[0].ips[0].holders == ("A",)


def test_cli_errors(tmp_path) -> None:
    topo_path = tmp_path / "t.yaml"
    topo_path.write_text(yaml.safe_dump(topo_doc()))
    log_path = tmp_path / "log.parquet"
    pq.write_table(log_table({"B": 5}), log_path)
    compiled = tmp_path / "t.aegisc"
    af.load_topology(topo_path).compile().save(compiled)
    runner = CliRunner()
    for args, needle in (
        (["-t", str(compiled)], "not a compiled file"),
        (["-t", str(topo_path), "--zone", "nope.example"], "unknown zone"),
        (["-t", str(topo_path), "--pool", "zz"], "unknown pool"),
        (["-t", str(topo_path), "--address", "300.1.1.1"], "not an IPv4 address"),
        (["-t", str(topo_path), "--patch", str(tmp_path / "x.txt")], ".yaml, .yml or .json"),
    ):
        res = runner.invoke(main, ["advise", str(log_path), *args])
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["advise", str(log_path), "-t", str(topo_path)])
    assert res.exit_code == 0 and "Advised moves" in res.output


def test_library_api_for_what_if() -> None:
    """The parts the what-if explorer uses: counts once, then any topology decided on them."""
    topo = af.Topology.from_dict(topo_doc())
    c = aggregate(log_table({"D": 40, "B": 10}), topo, pools=["p"])
    base = ScopeEngine(topo, {"p"}, c.server_ids).decide_groups(c, np.arange(len(c)))
    moved = apply_moves(topo, [Move("add", "p", "192.0.2.10", "D", ("D",))])
    after = ScopeEngine(moved, {"p"}, c.server_ids).decide_groups(c, np.arange(len(c)))
    assert int(c.rows[base.tier == 3].sum()) == 50
    assert int(c.rows[after.tier == 0].sum()) == 40
    assert not math.isnan(float(after.distance[after.tier == 3][0]))
