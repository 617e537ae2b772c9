"""Run one fuzz target: under atheris (coverage-guided, libFuzzer arguments) or over files.

Every target module defines ``test_one_input(data: bytes) -> None``, which raises only when it
found something (a crash-class exception, or an invariant of _invariants.py broken), and calls
``main(test_one_input)`` when run as a script:

    python fuzz/fuzz_compiled.py -max_total_time=60 /tmp/work fuzz/corpus/compiled   # fuzz
    python fuzz/fuzz_compiled.py --replay fuzz/corpus/compiled                         # seeds only

``--replay`` needs no atheris: the sanitizer build and the test suite use it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def replay(target: Callable[[bytes], None], paths: list[str]) -> int:
    """Run every file under ``paths`` through ``target``; return how many ran."""
    n = 0
    for root in paths:
        p = Path(root)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            try:
                target(f.read_bytes())
            except BaseException as exc:
                raise AssertionError(f"{f}: {type(exc).__name__}: {exc}") from exc
            n += 1
    return n


def _instrument_aegisfwd(atheris: Any) -> None:
    """Instrument, in place, every function and method defined in an aegisfwd module."""
    import inspect
    import types

    seen: set[int] = set()
    for name, module in list(sys.modules.items()):
        if not (name == "aegisfwd" or name.startswith("aegisfwd.")) or module is None:
            continue
        for obj in list(vars(module).values()):
            members = [obj] + (list(vars(obj).values()) if inspect.isclass(obj) else [])
            for f in members:
                f = getattr(f, "__func__", f)
                if isinstance(f, types.FunctionType) and f.__module__ == name and id(f) not in seen:
                    seen.add(id(f))
                    with contextlib.suppress(Exception):  # one atheris cannot rewrite stays as is
                        atheris.instrument_func(f)


def main(target: Callable[[bytes], None]) -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--replay":
        n = replay(target, sys.argv[2:])
        print(f"replayed {n} inputs: no finding")
        return
    import atheris  # the `fuzz` extra

    # Coverage of aegisfwd's Python functions (instrument_all() would instrument numpy, pandas
    # and pyarrow too: minutes of start-up). Not instrument_imports(): an editable install
    # imports aegisfwd through a custom finder, which import-time instrumentation does not see. The C++ core is not instrumented (that needs a
    # clang -fsanitize=fuzzer build); its invariants are checked on every input all the same.
    _instrument_aegisfwd(atheris)
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


class Provider:
    """Structured values from fuzz bytes (atheris' FuzzedDataProvider, minus the dependency, so that
    a replay reads an input exactly as the fuzzer did). Past the end, every value is zero/empty."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def remaining(self) -> int:
        return len(self._data) - self._at

    def bytes(self, n: int) -> bytes:
        out = self._data[self._at : self._at + max(n, 0)]
        self._at += len(out)
        return out

    def uint(self, nbytes: int) -> int:
        return int.from_bytes(self.bytes(nbytes).ljust(nbytes, b"\0"), "little")

    def int_in(self, lo: int, hi: int) -> int:
        """An int in [lo, hi]."""
        span = hi - lo + 1
        nbytes = max(1, (span.bit_length() + 7) // 8)
        return lo + self.uint(nbytes) % span

    def pick(self, options: list | tuple):  # type: ignore[type-arg]
        return options[self.int_in(0, len(options) - 1)]

    def text(self, max_len: int) -> str:
        return self.bytes(self.int_in(0, max_len)).decode("utf-8", "replace")
