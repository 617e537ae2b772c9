"""The C-level API: a separate tiny Cython module (tests/cimport_consumer) cimports
``aegisfwd._fast`` from the installed package, decides in ``nogil`` blocks, and must agree with the
Python API. Also checks that the .pxd ships with the package."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import aegisfwd as af

HERE = Path(__file__).parent
SOURCE = HERE / "cimport_consumer" / "aegisfwd_consumer.pyx"


def package_root() -> Path:
    """The directory that holds the installed ``aegisfwd/`` package (its .pxd beside it)."""
    return Path(af.__file__).resolve().parent.parent


def test_pxd_is_installed_with_the_package():
    pxd = Path(af.__file__).resolve().parent / "_fast.pxd"
    assert pxd.is_file()
    text = pxd.read_text()
    assert "AEGISFWD_CAPI_VERSION" in text and "noexcept nogil" in text


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    cython_build = pytest.importorskip("Cython.Build", reason="Cython is needed to build the consumer module")
    pytest.importorskip("setuptools", reason="setuptools is needed to build the consumer module")
    from setuptools import Distribution, Extension

    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on PATH: cannot build the consumer module")
    build = tmp_path_factory.mktemp("cimport_consumer")
    pyx = build / SOURCE.name
    shutil.copy(SOURCE, pyx)
    ext = Extension("aegisfwd_consumer", [str(pyx)], language="c++", include_dirs=[np.get_include()])
    modules = cython_build.cythonize(
        [ext], include_path=[str(package_root())], build_dir=str(build), quiet=True, language_level=3
    )
    dist = Distribution({"name": "aegisfwd_consumer", "ext_modules": modules})
    dist.script_args = ["build_ext", "--build-lib", str(build), "--build-temp", str(build / "tmp")]
    dist.parse_command_line()
    dist.run_commands()
    built = next(build.glob("aegisfwd_consumer*.so"), None) or next(build.glob("aegisfwd_consumer*.pyd"))
    spec = importlib.util.spec_from_file_location("aegisfwd_consumer", built)
    module = importlib.util.module_from_spec(spec)
    sys.modules["aegisfwd_consumer"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world_like():
    doc = {
        "locations": [{"id": f"L{i}", "lat": 0.0, "lon": 1.5 * i} for i in range(6)],
        "data_centers": [
            {"id": f"D{i}{d}", "location": f"L{i}", "servers": [f"s{i}{d}{k}" for k in range(9)]}
            for i in range(6)
            for d in range(2)
        ],
        "pools": [
            {
                "id": f"p{p}",
                "ips": [
                    {"address": f"192.0.{p}.1", "holders": [f"D{p % 6}0", f"L{(p + 2) % 6}"]},
                    {"address": f"192.0.{p}.2", "holders": [f"s{(p + 3) % 6}10"]},
                    {"address": f"2001:db8:{p:x}::/48", "holders": [f"L{i}" for i in range(6)]},
                ],
            }
            for p in range(20)
        ],
    }
    return af.Topology.from_dict(doc)


def test_capi_version(consumer):
    built_with, compiled_against = consumer.versions()
    assert built_with == compiled_against == 1


def test_nogil_decisions_match_python(consumer, world_like):
    engine = af.Engine(world_like)
    engine.set_state("L1", "down")
    engine.set_state("D20", "draining")
    rng = np.random.default_rng(4)
    n = 3000
    s = rng.integers(-1, len(engine.servers) + 1, n).astype(np.int32)
    p = rng.integers(0, len(engine.pools), n).astype(np.int32)
    f = rng.choice(np.array([4, 6, 5], np.uint8), n)
    fl = rng.integers(0, 2**64, n, dtype=np.uint64)
    expected = engine.decide_batch(s, p, f, fl, errors="mark")
    got = consumer.decide_loop(engine, s, p, f, fl)
    for name, column in zip(("tier", "server", "dc", "location", "ip", "distance"), got, strict=True):
        assert np.array_equal(column, getattr(expected, name), equal_nan=True), name
    (tier, server, ip), invalid = consumer.decide_many(engine, s, p, f, fl)
    assert invalid == int((expected.tier == af.Tier.INVALID).sum()) > 0
    assert np.array_equal(tier, expected.tier) and np.array_equal(server, expected.server)
    assert np.array_equal(ip, expected.ip)
    for k in range(0, n, 97):
        if expected.tier[k] == af.Tier.INVALID:
            continue
        d = engine.decide(int(s[k]), int(p[k]), int(f[k]), int(fl[k]))
        one = consumer.decide_one(engine, s[k], p[k], f[k], fl[k])
        assert one[:5] == (int(d.tier), d.server_index, d.dc_index, d.location_index, d.ip_index)
        assert one[5] == d.distance or (np.isnan(one[5]) and np.isnan(d.distance))


def test_engine_pointer_needs_a_compiled_engine(consumer, world_like):
    with pytest.raises(TypeError, match="reference"):
        consumer.decide_one(af.Engine(world_like, backend="reference"), 0, 0, 4, 1)
    with pytest.raises(TypeError, match="aegisfwd.Engine"):
        consumer.decide_one(object(), 0, 0, 4, 1)
