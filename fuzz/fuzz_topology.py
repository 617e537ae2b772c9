"""Fuzz target: topology files (YAML, JSON, TOML bytes) through load_topology.

Invariants: a file either loads, or raises ``TopologyError`` whose issues each carry a code and a
message (never a bare ValueError, RecursionError or other escape). A file that loads compiles; its
compiled engine answers every (server, pool, family) exactly like the reference engine, every
answer holds the guarantee of _invariants.py, and the compiled bytes load back to the same answers.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import main
from _invariants import check_batch

import aegisfwd as af

SUFFIXES = (".yaml", ".json", ".toml")
_DIR = Path(tempfile.mkdtemp(prefix="aegisfwd-fuzz-topology-"))


def test_one_input(data: bytes) -> None:
    if not data:
        return
    # First byte: the format; the rest: the file.
    path = _DIR / f"t{SUFFIXES[data[0] % 3]}"
    path.write_bytes(data[1:])
    try:
        topo = af.load_topology(path)
    except af.TopologyError as exc:
        if not exc.errors or not all(i.code and i.message for i in exc.errors):
            raise AssertionError(f"TopologyError without issues: {exc!r}") from None
        return
    try:
        compiled = topo.compile()
    except af.TopologyError:
        return  # e.g. a key collision the compiler refuses
    engine = af.Engine(compiled)
    check_batch(compiled, engine, af.Engine(topo, backend="reference"))
    loaded = af.CompiledTopology.from_bytes(compiled.to_bytes())
    check_batch(loaded, af.Engine(loaded), engine)


if __name__ == "__main__":
    main(test_one_input)
