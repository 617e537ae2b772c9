"""Where the C ABI of this installation lives: ``aegisfwd.h``, ``libaegisfwd`` and their build metadata.

The wheel ships them inside the package (``include/``, ``lib/``, ``lib/cmake/aegisfwd/``,
``lib/pkgconfig/``) so that a proxy written in C, C++, Rust or Lua can build against the very engine
Python uses; ``aegisfwd config --includedir --libdir --cmakedir --pkgconfigdir`` prints these paths
for build scripts (docs/c-api.md).
"""

from __future__ import annotations

import sys
from functools import cache
from importlib import metadata
from pathlib import Path

from .errors import AegisError

__all__ = [
    "CApiNotInstalledError",
    "cmake_dir",
    "include_dir",
    "library_dir",
    "library_path",
    "pkgconfig_dir",
]

_HEADER = "include/aegisfwd.h"


class CApiNotInstalledError(AegisError):
    """This installation of aegisfwd has no C ABI files (a source tree that was never built)."""


def _library_name() -> str:
    if sys.platform == "darwin":
        return "libaegisfwd.dylib"
    if sys.platform == "win32":
        return "aegisfwd.dll"
    return "libaegisfwd.so"


@cache
def _root() -> Path:
    """The installed package directory that holds ``include/aegisfwd.h``.

    A wheel install has it beside this module. An editable install keeps the Python sources in the
    source tree and the files CMake installed in site-packages: the distribution's file list says where.
    """
    here = Path(__file__).resolve().parent
    if (here / _HEADER).is_file():
        return here
    try:
        files = metadata.files("aegisfwd") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.as_posix().endswith("aegisfwd/" + _HEADER):
            return Path(str(f.locate())).resolve().parent.parent
    raise CApiNotInstalledError(
        f"the C ABI files (aegisfwd/{_HEADER}, lib/{_library_name()}) are not installed with this aegisfwd "
        f"({here}): install the package with pip to build them"
    )


def include_dir() -> Path:
    """Directory holding ``aegisfwd.h`` (``-I``)."""
    return _root() / "include"


def library_dir() -> Path:
    """Directory holding the shared library ``libaegisfwd`` (``-L``, run path)."""
    return _root() / "lib"


def library_path() -> Path:
    """The shared library itself (for ``dlopen`` / LuaJIT's ``ffi.load``)."""
    return library_dir() / _library_name()


def cmake_dir() -> Path:
    """Directory holding ``aegisfwdConfig.cmake`` (``-Daegisfwd_DIR=...`` for ``find_package``)."""
    return library_dir() / "cmake" / "aegisfwd"


def pkgconfig_dir() -> Path:
    """Directory holding ``aegisfwd.pc`` (add it to ``PKG_CONFIG_PATH``)."""
    return library_dir() / "pkgconfig"
