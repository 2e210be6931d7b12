"""Native thread pools sized for a server process on a few shared cores.

numpy's OpenBLAS, the e5 engine's OpenMP and TensorFlow each start a pool of threads the
size of the machine and split every operation across it. That pays on an idle machine; in
a serving process it does not: the work is many small operations (a 2,023 × 384 cosine, one
DIET pass), the cores are shared by Rasa, the action server and the gateway, and an
operation split in two waits until its second thread is scheduled. Measured on 2 cores with
both busy: the Q&A cosine took 4 ms (p50) with OpenBLAS's two threads and 0.04 ms with
one; through the chat at 10 concurrent conversations the mean reply time of citizen
messages fell from 545 to 440 ms with one thread everywhere (README "Performance").

Only the serving processes are limited (the Rasa server, the action server, the gateway):
`bot train` keeps every core, where one large operation at a time does split well.
"""

from __future__ import annotations

import os
import sys

# Read by OpenBLAS / MKL / OpenMP when they load, and by Rasa for TensorFlow at start-up.
ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS",
            "TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS")


# The variables this process set (not the operator): a training it starts drops them.
_SET_HERE: set[str] = set()


def limit_native_threads(count: int) -> None:
    """Size the native pools of this process at `count` threads (0: the libraries' own
    default). A variable the operator set wins; libraries already loaded (numpy imported
    before the call) are limited at run time through threadpoolctl."""
    if count <= 0:
        return
    for var in ENV_VARS:
        if var not in os.environ:
            os.environ[var] = str(count)
            _SET_HERE.add(var)
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")


def unlimited_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child that should use every core (a training the console starts from
    the gateway): without the pool sizes this process set for itself."""
    return {k: v for k, v in env.items() if k not in _SET_HERE}
