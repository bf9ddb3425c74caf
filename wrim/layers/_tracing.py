"""When the layers' Python input checks run: not while ``torch.fx`` traces them with proxies.

The checks compare shapes and types in Python; on an ``fx`` Proxy they would fail (``bool(Proxy)``), so a traced
graph carries no checks. TorchScript removes them on its own (``torch.jit.is_scripting()`` branches).
"""

from torch.fx import _symbolic_trace

# torch >= 2.6 tells symbolic tracing apart from export (whose fake tensors the checks handle)
_is_symbolic_tracing = getattr(_symbolic_trace, "is_fx_symbolic_tracing", _symbolic_trace.is_fx_tracing)

__all__ = ["checks_enabled"]


def checks_enabled() -> bool:
    """Whether eager input checks should run (False while ``torch.fx.symbolic_trace`` traces)."""
    return not _is_symbolic_tracing()
