"""Compiled topology: the dense tables of ``docs/compiled-format.md``, their file format and loading.

``compile_topology(topology)`` turns a validated ``Topology`` into a flat set of named, little-endian,
C-contiguous numpy arrays; ``CompiledTopology`` holds them, saves them as one file and loads such a
file back as zero-copy views into a read-only memory map. The C++ core reads the very same arrays
through raw pointers, which is why the loader checks every index range before anything is handed on:
a corrupt file must raise ``CompiledFileError``, never lead to a read past a buffer.

One job per module: ``_format`` (constants and the list of arrays), ``_compiler``, ``_container``
(the object, save, mmap load) and ``_verify`` (runs the C++ loader's checks, then maps the arrays).
"""

from __future__ import annotations

from ._compiler import compile_topology
from ._container import CompiledTopology, load_compiled

# Pickles written before the split name ``aegisfwd.compiled._unpickle``: keep that path working.
from ._container import _unpickle as _unpickle
from ._format import ARRAY_NAMES, COUNT_NAMES, FORMAT_VERSION, MAGIC

__all__ = [
    "ARRAY_NAMES",
    "COUNT_NAMES",
    "FORMAT_VERSION",
    "MAGIC",
    "CompiledTopology",
    "compile_topology",
    "load_compiled",
]
