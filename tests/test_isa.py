"""One instruction-set mechanism for all of the C++ core: the names ``aegisfwd._core.resolve_isa``
accepts are the ones the engine and the log helpers accept, and a name they refuse is refused the same
way by each (docs/engine.md, "Dispatch"). That every set gives the same answers is held elsewhere
(test_engine.py: decisions and argmax; test_evaluate_parsing.py: the ingress choice)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd import _core

ISAS = _core.available_isas()
KNOWN = ("generic", "avx2", "avx512")
AREAS = ("hashing", "engine", "logeval", "concurrency", "compiled")


def test_available_and_auto() -> None:
    assert ISAS[0] == "generic"
    assert ISAS == [isa for isa in KNOWN if isa in ISAS]  # best last
    assert _core.resolve_isa("auto") == ISAS[-1] == _core.resolve_isa("")
    for isa in ISAS:
        assert _core.resolve_isa(isa) == isa


def _ingress(isa: str) -> np.ndarray:
    one = np.zeros(1, np.int32)
    keys = np.arange(4, dtype=np.uint64)
    return _core.logeval.choose_ingress(
        one, one + 4, np.ones(1, np.uint64), keys, np.zeros(4, np.uint8), 1, isa
    )


@pytest.fixture(scope="module")
def engine_arrays() -> dict[str, np.ndarray]:
    topo = af.load_topology(Path(__file__).parent / "fixtures" / "topologies" / "spec-example.yaml")
    return dict(topo.compile().arrays)


@pytest.mark.parametrize("bad", ["sse9", "AVX2", " avx2", "avx2 ", "native"])
def test_unknown_name_is_refused_alike_everywhere(bad: str, engine_arrays) -> None:
    listed = ", ".join(["auto", *ISAS])
    message = rf"unknown isa '{bad}': expected auto, generic, avx2 or avx512 \(available here: {listed}\)"
    with pytest.raises(ValueError, match=message):
        _core.resolve_isa(bad)
    with pytest.raises(ValueError, match=message):
        _core.engine.Engine(engine_arrays, None, bad)
    with pytest.raises(ValueError, match=message):
        _ingress(bad)
    with pytest.raises(ValueError, match=message):
        af.Engine(
            af.load_topology(Path(__file__).parent / "fixtures" / "topologies" / "spec-example.yaml"), isa=bad
        )


def test_missing_set_is_refused_alike_everywhere(engine_arrays) -> None:
    missing = [isa for isa in KNOWN if isa not in ISAS]
    if not missing:
        pytest.skip(f"this CPU and build run every instruction set ({', '.join(ISAS)})")
    for isa in missing:
        message = rf"isa '{isa}' is not available on this CPU or build"
        with pytest.raises(ValueError, match=message):
            _core.resolve_isa(isa)
        with pytest.raises(ValueError, match=message):
            _core.engine.Engine(engine_arrays, None, isa)
        with pytest.raises(ValueError, match=message):
            _ingress(isa)


def test_engine_and_log_helpers_run_the_resolved_set(engine_arrays) -> None:
    for name in ("auto", *ISAS):
        assert _core.engine.Engine(engine_arrays, None, name).isa == _core.resolve_isa(name)
        assert _ingress(name).tolist() == _ingress("generic").tolist()


def test_non_string_isa_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="isa must be a string"):
        af.Engine(
            af.load_topology(Path(__file__).parent / "fixtures" / "topologies" / "spec-example.yaml"), isa=2
        )  # type: ignore[arg-type]


@pytest.mark.parametrize("area", AREAS)
def test_each_area_is_a_submodule_importable_by_name(area: str) -> None:
    module = importlib.import_module(f"aegisfwd._core.{area}")
    assert module is getattr(_core, area)
    assert module.__name__ == f"aegisfwd._core.{area}"
    assert (Path(af.__file__).parent / "_core" / f"{area}.pyi").is_file()
