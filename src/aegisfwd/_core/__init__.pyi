"""Type stubs of the compiled pybind11 module ``aegisfwd._core`` (internal; use ``aegisfwd.Engine``).

One submodule per area of the C++ core (cpp/bindings/register_<area>.cpp), each with its stub here;
the instruction-set names every dispatching area accepts are at the top.
"""

from . import compiled as compiled
from . import concurrency as concurrency
from . import engine as engine
from . import hashing as hashing
from . import logeval as logeval

def available_isas() -> list[str]: ...
def resolve_isa(name: str) -> str: ...
