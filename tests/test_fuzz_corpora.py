"""Every seed and every input a fuzzer once found (fuzz/corpus/<target>/) replayed through its
target: each must hold the target's invariants. The fuzzers themselves run in .ci/run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
TARGETS = sorted(p.name for p in (FUZZ / "corpus").iterdir() if p.is_dir())


def target(name: str) -> ModuleType:
    sys.path.insert(0, str(FUZZ))
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", FUZZ / f"fuzz_{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_corpus_has_a_target() -> None:
    assert TARGETS == ["batch", "compiled", "logrows", "proxy", "topology"]
    for name in TARGETS:
        assert (FUZZ / f"fuzz_{name}.py").exists()
        assert any((FUZZ / "corpus" / name).iterdir())


@pytest.mark.parametrize("name", TARGETS)
def test_corpus_holds_the_invariants(name: str) -> None:
    run = target(name).test_one_input
    for path in sorted((FUZZ / "corpus" / name).iterdir()):
        try:
            run(path.read_bytes())
        except BaseException as exc:
            raise AssertionError(f"{path.name}: {type(exc).__name__}: {exc}") from exc


def test_compiled_target_mutations_get_past_the_checksums() -> None:
    # The compiled target recomputes both CRCs after mutating, or the fuzzer would only ever test the
    # CRC check (and its coverage count cannot show it: the checks run in C++, which atheris does not
    # see). One flipped bit anywhere after the fixed prefix: the file loads or a named check refuses
    # it, never a checksum.
    import random

    import aegisfwd as af

    fuzz = target("compiled")
    seed = (FUZZ / "corpus" / "compiled" / "spec-example").read_bytes()
    rng = random.Random(0)
    loaded, refusals = 0, []
    for _ in range(300):
        data = bytearray(seed)
        k = rng.randrange(fuzz.PREFIX.size, len(data))
        data[k] ^= 1 << rng.randrange(8)
        try:
            af.CompiledTopology.from_bytes(fuzz.with_crcs(bytes(data)))
            loaded += 1
        except af.CompiledFileError as exc:
            refusals.append(str(exc))
    assert not [r for r in refusals if "CRC" in r]
    assert loaded > 0  # some mutants reach the engine and its invariants, not only the loader's refusals
