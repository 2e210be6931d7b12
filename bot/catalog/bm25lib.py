"""bm25s, imported without JAX.

bm25s imports JAX when it is installed, only to pick its top-k with `jax.lax.top_k`, and
JAX is installed here as a dependency of TensorFlow (Rasa). That import cost every gateway
and action server process about 3 s at start and well over 100 MiB of memory (measured
for README "Performance"); our search ranks with its own sparse matrices, and bm25s's
numpy top-k gives the same result. So JAX is hidden while bm25s is imported; a process
that imported JAX already keeps it.
"""

from __future__ import annotations

import sys
from types import ModuleType


def _import_without_jax() -> ModuleType:
    if "bm25s" in sys.modules:
        return sys.modules["bm25s"]
    hide = "jax" not in sys.modules
    if hide:
        sys.modules["jax"] = None  # type: ignore[assignment] - `import jax` raises ImportError
    try:
        import bm25s
    finally:
        if hide and sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]
    return bm25s


bm25s = _import_without_jax()
