"""Bad input never crashes the engine: each case is a clear Python exception (or, where the
contract says so, an INVALID row) -- at the public API, at the pybind11 core, and for corrupt
compiled tables handed to the core."""

from __future__ import annotations

import math

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd import _core
from aegisfwd.engine import available_isas

DOC = {
    "locations": [
        {"id": "A", "lat": 0, "lon": 0},
        {"id": "B", "lat": 0, "lon": 2},
        {"id": "C", "lat": 1, "lon": 1},
    ],
    "data_centers": [
        {"id": "A1", "location": "A", "servers": ["a1", "a2", "a3"]},
        {"id": "A2", "location": "A", "servers": ["a4"]},
        {"id": "B1", "location": "B", "servers": [f"b{i}" for i in range(12)]},
        {"id": "C1", "location": "C", "servers": ["c1", "c2"]},
    ],
    "pools": [
        {
            "id": "p",
            "ips": [
                {"address": "192.0.2.1", "holders": ["B1"]},
                {"address": "192.0.2.2", "holders": ["b3", "c1"]},
                {"address": "2001:db8::/48", "holders": ["A", "B", "C"]},
            ],
        },
        {"id": "q", "ips": [{"address": "192.0.2.3", "holders": []}]},
    ],
}


@pytest.fixture(scope="module")
def topo():
    return af.Topology.from_dict(DOC)


@pytest.fixture(scope="module")
def compiled(topo):
    return topo.compile()


@pytest.fixture
def engine(topo):
    return af.Engine(topo)


def columns(n=8):
    return (
        np.zeros(n, np.int32),
        np.zeros(n, np.int32),
        np.full(n, 4, np.uint8),
        np.arange(n, dtype=np.uint64),
    )


# ---- the public API ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        (("nope", "p", 4, 1), af.UnknownIdError, "server"),
        ((-1, "p", 4, 1), af.UnknownIdError, "server"),
        ((10**6, "p", 4, 1), af.UnknownIdError, "server"),
        ((2**80, "p", 4, 1), af.UnknownIdError, "server"),
        ((True, "p", 4, 1), af.UnknownIdError, "server"),
        ((1.0, "p", 4, 1), af.UnknownIdError, "server"),
        (("a1", "zzz", 4, 1), af.UnknownIdError, "pool"),
        (("a1", 2, 4, 1), af.UnknownIdError, "pool"),
        (("a1", None, 4, 1), af.UnknownIdError, "pool"),
        (("a1", "p", 5, 1), af.InvalidFamilyError, "5"),
        (("a1", "p", "4", 1), af.InvalidFamilyError, "4"),
        (("a1", "p", 4.0, 1), af.InvalidFamilyError, "4"),
        (("a1", "p", 4, -1), ValueError, "flow"),
        (("a1", "p", 4, 2**64), ValueError, "flow"),
        (("a1", "p", 4, "1"), ValueError, "flow"),
    ],
)
def test_scalar_errors_name_the_value(engine, args, exc, match):
    with pytest.raises(exc, match=match):
        engine.decide(*args)
    with pytest.raises(exc):
        af.ReferenceEngine(af.Topology.from_dict(DOC)).decide(*args)


def test_numpy_scalars_take_the_slow_path(engine, topo):
    ref = af.ReferenceEngine(topo)
    args = (np.int64(1), np.int32(0), np.uint8(4), np.int64(-1))  # a signed flow is reinterpreted
    assert engine.decide(*args) == ref.decide(*args)


def test_batch_shapes_and_lengths(engine):
    s, p, f, fl = columns()
    with pytest.raises(af.BatchInputError, match="length"):
        engine.decide_batch(s, p[:3], f, fl)
    with pytest.raises(af.BatchInputError, match="1-D"):
        engine.decide_batch(s.reshape(2, 4), p, f, fl)
    with pytest.raises(af.BatchInputError):
        engine.decide_batch(s.astype(float), p, f, fl)
    with pytest.raises(af.BatchInputError, match="errors"):
        engine.decide_batch(s, p, f, fl, errors="ignore")


def test_batch_bad_rows_raise_or_mark(engine):
    s, p, f, fl = columns()
    s[3], p[5], f[6] = 99, -1, 5
    with pytest.raises(af.UnknownIdError, match="row 3"):
        engine.decide_batch(s, p, f, fl)
    r = engine.decide_batch(s, p, f, fl, errors="mark")
    bad = np.zeros(8, bool)
    bad[[3, 5, 6]] = True
    assert (r.tier[bad] == af.Tier.INVALID).all() and (r.tier[~bad] != af.Tier.INVALID).all()
    assert (r.server[bad] == -1).all() and (r.ip[bad] == -1).all() and np.isnan(r.distance[bad]).all()
    # The same through lists (the normalising path) and through the direct numpy path.
    r2 = engine.decide_batch(s.tolist(), p.tolist(), f.tolist(), fl.tolist(), errors="mark")
    assert r.equals(r2)


def test_non_contiguous_read_only_and_foreign_dtypes_are_normalised(engine):
    s, p, f, fl = columns(16)
    expected = engine.decide_batch(s[::2].copy(), p[::2].copy(), f[::2].copy(), fl[::2].copy())
    assert engine.decide_batch(s[::2], p[::2], f[::2], fl[::2]).equals(expected)
    for a in (s, p, f, fl):
        a.flags.writeable = False
    assert engine.decide_batch(s, p, f, fl).equals(
        engine.decide_batch(s.copy(), p.copy(), f.copy(), fl.copy())
    )
    big_endian = s.astype(">i4")
    assert engine.decide_batch(big_endian, p, f, fl).equals(engine.decide_batch(s, p, f, fl))
    assert engine.decide_batch(
        s.astype(np.int64), p.astype(np.uint16), f.astype(np.int8), fl.astype(np.int64)
    ).equals(engine.decide_batch(s, p, f, fl))


# ---- the pybind11 core: exact dtypes, checked lengths, never a conversion ------------------------
def test_core_checks_dtypes_contiguity_and_lengths(engine):
    core = engine._core_engine
    s, p, f, fl = columns()
    assert core.decide_batch(s, p, f, fl, 1)[6] == 0
    for bad_args, match in [
        ((s.astype(np.int64), p, f, fl), "server must have dtype int32"),
        ((s, p.astype(np.uint32), f, fl), "pool must have dtype int32"),
        ((s, p, f.astype(np.int8), fl), "family must have dtype uint8"),
        ((s, p, f, fl.astype(np.int64)), "flow must have dtype uint64"),
        ((s.astype(">i4"), p, f, fl), "dtype int32"),
        ((s[::2], p[::2], f[::2], fl[::2]), "C-contiguous"),
        ((s.reshape(2, 4), p, f, fl), "1-dimensional"),
        ((s, p[:4], f, fl), "same length"),
        ((s.tolist(), p, f, fl), "numpy array"),
    ]:
        with pytest.raises(ValueError, match=match):
            core.decide_batch(*bad_args, 1)
    ro = s.copy()
    ro.flags.writeable = False
    assert core.decide_batch(ro, p, f, fl, 1)[6] == 0  # read-only input is fine: only read
    with pytest.raises(TypeError):
        core.decide_batch(s, p, f, fl, -1)


def test_core_marks_out_of_range_rows_invalid(engine):
    core = engine._core_engine
    n_s, n_p = len(engine.servers), len(engine.pools)
    s = np.array([0, -1, n_s, 2**31 - 1, -(2**31), 0, 0, 0], np.int32)
    p = np.array([0, 0, 0, 0, 0, n_p, -5, 0], np.int32)
    f = np.array([4, 4, 4, 4, 4, 4, 4, 255], np.uint8)
    tier, server, _, _, _, dist, n_invalid = core.decide_batch(s, p, f, np.zeros(8, np.uint64), 1)
    assert n_invalid == 7 and tier[0] != 255 and (tier[1:] == 255).all()
    assert (server[1:] == -1).all() and np.isnan(dist[1:]).all()
    out = core.decide(-1, 0, 4, 0)
    assert out[0] == 255 and math.isnan(out[5])


def test_core_state_setters_check_input(engine):
    core = engine._core_engine
    n = len(engine.servers)
    with pytest.raises(IndexError):
        core.set_state(-1, 1, 2)
    with pytest.raises(IndexError):
        core.set_state(0, n + 1, 2)
    with pytest.raises(IndexError):
        core.set_state(3, 2, 2)
    with pytest.raises(ValueError, match="state"):
        core.set_state(0, 1, 3)
    with pytest.raises(ValueError, match="values"):
        core.set_states(np.zeros(n + 1, np.uint8))
    with pytest.raises(ValueError, match="state"):
        core.set_states(np.full(n, 7, np.uint8))
    with pytest.raises(IndexError):
        core.state(n)
    with pytest.raises(ValueError, match="isa"):
        _core.engine.Engine(engine.compiled.arrays, None, "mmx")


# ---- corrupt compiled tables handed to the core --------------------------------------------------
def test_core_rejects_missing_or_mistyped_arrays(compiled):
    arrays = dict(compiled.arrays)
    del arrays["server_dc"]
    with pytest.raises(ValueError, match="missing array 'server_dc'"):
        _core.engine.Engine(arrays)
    arrays = dict(compiled.arrays)
    arrays["server_key"] = arrays["server_key"].astype(np.int64)
    with pytest.raises(ValueError, match="server_key.*uint64"):
        _core.engine.Engine(arrays)
    arrays = dict(compiled.arrays)
    arrays["group_layout"] = arrays["group_layout"][:-1]
    with pytest.raises(ValueError, match="group_layout"):
        _core.engine.Engine(arrays)


@pytest.mark.parametrize(
    ("name", "index", "value", "match"),
    [
        ("server_dc", 0, 70000, "server_dc"),
        ("server_location", 2, 2, "server_location"),
        ("dc_server_start", -1, 10**6, "dc_server_start"),
        ("location_dc_start", 1, 0, "location"),
        ("ip_holder_ranges", 0, -5, "ip_holder_ranges"),
        ("ip_holder_ranges", 1, 10**6, "ip_holder_ranges"),
        ("ip_holder_start", 1, 10**6, "ip_holder_start"),
        ("group_ips", 0, 999, "group_ips"),
        ("group_ip_start", 2, 10**6, "group_ip_start"),
        ("list_servers", 0, -1, "list_servers"),
        ("list_server_start", 1, 10**6, "list_server_start"),
        ("list_location", 0, 99, "list_location"),
        ("layout_list", 0, 10**6, "layout_list"),
        ("layout_location", 0, -1, "layout_location"),
        ("layout_start", 1, 10**6, "layout_start"),
        ("group_layout", 0, 10**6, "group_layout"),
        ("nearest_order", 0, 99, "nearest_order"),
        ("nearest_rank", 1, 5, "nearest_rank"),
        ("server_initial_state", 0, 9, "server_initial_state"),
        ("ip_family", 0, 5, "ip_family"),
    ],
)
def test_core_rejects_corrupt_indices_naming_the_array(compiled, name, index, value, match):
    arrays = {k: np.array(v) for k, v in compiled.arrays.items()}
    flat = arrays[name].reshape(-1)
    flat[index] = value
    with pytest.raises(ValueError, match=match):
        _core.engine.Engine(arrays)
    corrupt = af.CompiledTopology(arrays, counts=compiled.counts, distance_unit=compiled.distance_unit)
    with pytest.raises(af.CompiledFileError, match=match):
        af.Engine(corrupt)


@pytest.mark.parametrize(
    ("name", "index", "value", "match"),
    [
        (
            "location_distance",
            (0, 1),
            -1.0,
            r"array 'location_distance' holds a negative distance at row 0, column 1",
        ),
        ("location_distance", (2, 2), 3.0, r"array 'location_distance' has a non-zero diagonal at row 2"),
        ("list_server_start", 1, 0, r"array 'list_server_start' gives list 0 no server"),
        ("ip_pool", 0, 1, r"array 'ip_pool' is not sorted by pool at row 1 \(1 > 0\)"),
        ("server_dc", 0, 70000, r"array 'server_dc' holds index 70000 outside \[0, 4\) at row 0"),
    ],
)
def test_engine_and_loader_share_one_statement_of_the_invariants(compiled, name, index, value, match):
    """The loader of compiled files runs the engine's validator (TablesView::validate): an engine built
    from arrays that never were a file refuses them with the very message load_compiled gives."""
    arrays = {k: np.array(v) for k, v in compiled.arrays.items()}
    arrays[name][index] = value
    with pytest.raises(ValueError, match=match):
        _core.engine.Engine(arrays)
    forged = af.CompiledTopology(arrays, counts=compiled.counts, distance_unit=compiled.distance_unit)
    with pytest.raises(af.CompiledFileError, match=match):
        af.CompiledTopology.from_bytes(forged.to_bytes())


@pytest.mark.parametrize("isa", available_isas())
def test_random_corruption_is_rejected_or_harmless(compiled, isa):
    """Flip random elements of random arrays: construction either raises ValueError or builds an
    engine whose decisions on any input stay in range (checked on every row)."""
    rng = np.random.default_rng(123)
    names = [n for n, a in compiled.arrays.items() if a.dtype.kind in "iu" and "_id_" not in n]
    built = 0
    for _trial in range(400):
        arrays = {k: np.array(v) for k, v in compiled.arrays.items()}
        for _ in range(int(rng.integers(1, 3))):
            name = names[int(rng.integers(0, len(names)))]
            flat = arrays[name].reshape(-1)
            if flat.size == 0:
                continue
            i = int(rng.integers(0, flat.size))
            info = np.iinfo(flat.dtype)
            choices = [info.min, info.max, -1, 0, 1, int(flat[i]) + 1, int(flat[i]) - 1, 1 << 20]
            v = choices[int(rng.integers(0, len(choices)))]
            flat[i] = np.array(v).astype(flat.dtype) if info.min <= v <= info.max else flat[i]
        try:
            core = _core.engine.Engine(arrays, None, isa)
        except ValueError:
            continue
        built += 1
        n_s, n_p, n_l = len(compiled.servers), len(compiled.pools), len(compiled.locations)
        s = rng.integers(-1, n_s + 1, 300).astype(np.int32)
        p = rng.integers(-1, n_p + 1, 300).astype(np.int32)
        f = rng.choice(np.array([4, 6, 0], np.uint8), 300)
        tier, server, _, loc, _, _, _ = core.decide_batch(
            s, p, f, rng.integers(0, 2**64, 300, dtype=np.uint64), 1
        )
        assert np.isin(tier, [0, 1, 2, 3, 4, 255]).all()
        assert ((server >= -1) & (server < n_s)).all() and ((loc >= -1) & (loc < n_l)).all()
        core.set_state(0, n_s, 2)
        core.set_state(0, n_s // 2, 0)
        core.decide_batch(s, p, f, np.zeros(300, np.uint64), 1)
    assert built > 0  # some corruptions (e.g. of keys) are valid tables
