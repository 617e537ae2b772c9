"""Opening a compiled file held in a buffer: the C++ loader checks it, this module maps the arrays.

Every check of a compiled file lives in C++ (``cpp/src/compiled_file.cpp`` for what only a file
has, ``TablesView::validate`` for the invariants of the arrays; docs/compiled-format.md lists them),
the one loader the C ABI uses too. ``_core.compiled.check_compiled`` runs it on the buffer (without the GIL;
the payload CRC of a large file on a second thread); only then does this module read the header it
has checked and make numpy views of the arrays. A corrupt file raises ``CompiledFileError`` with the
C++ loader's message, before any array exists.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .. import _core
from ..errors import CompiledFileError
from ._format import ARRAY_SPECS, PREFIX, PREFIX_SIZE

__all__ = ["open_tables"]

# CompiledFile reads the arrays in place, so the buffer must be aligned for the widest dtype.
_ALIGNMENT = 8


def open_tables(buffer: Any, *, verify: bool) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, Any]]:
    """Check a compiled file held in ``buffer``; return its arrays (read-only views), counts and header.

    Checks magic, version, length, header CRC and schema, the payload CRC (unless ``verify=False``)
    and every invariant of the arrays; raises ``CompiledFileError`` naming the first problem.
    """
    try:
        view = memoryview(buffer)
    except TypeError:
        raise CompiledFileError(f"expected a bytes-like buffer, got {type(buffer).__name__}") from None
    if view.ndim != 1 or view.itemsize != 1 or view.format not in ("B", "b", "c"):
        if not view.c_contiguous:
            raise CompiledFileError("the buffer is not contiguous")
        view = view.cast("B")
    if view.nbytes and np.frombuffer(view, dtype=np.uint8).ctypes.data % _ALIGNMENT:
        view = memoryview(bytes(view))  # a slice of another buffer: copy it to aligned memory
    try:
        _core.compiled.check_compiled(view, verify)
    except ValueError as exc:
        raise CompiledFileError(str(exc)) from None
    # The header is known good now: its JSON parses, and every array lies where it says.
    hlen = PREFIX.unpack_from(view, 0)[2]
    try:
        header = json.loads(bytes(view[PREFIX_SIZE : PREFIX_SIZE + hlen]).decode("utf-8"))
    except ValueError as exc:  # the C++ reader accepts no JSON that Python's refuses; never a crash
        raise CompiledFileError(f"header is not valid JSON: {exc}") from None
    arrays = {}
    for name, dtype, _ in ARRAY_SPECS:
        entry = header["arrays"][name]
        shape = tuple(entry["shape"])
        array = np.frombuffer(view, dtype=np.dtype(dtype), count=int(np.prod(shape)), offset=entry["offset"])
        array = array.reshape(shape)
        if array.flags.writeable:
            array.flags.writeable = False
        arrays[name] = array
    return arrays, header["counts"], header
