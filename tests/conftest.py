"""Test configuration: strict dtype and rank promotion, which the library must work under."""

import gc
import os

# Every pytest-xdist worker is a separate JAX process. On a GPU, each would
# otherwise reserve most of the device memory when it starts.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# Linux's default vm.max_map_count is 65530 mappings per process.
_MAX_MAPPINGS = 30000


def _mapping_count():
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after a test module once the process has many memory mappings.

    XLA on the CPU maps memory for every compiled program, and the suite
    compiles thousands of them: one module of numerical tests left about
    5000 mappings. Kept until exit, they approach Linux's default limit of
    65530 per process, and a compilation late in the suite crashed with a
    segmentation fault. Clearing the caches releases the mappings. It is
    done only above ``_MAX_MAPPINGS``, because later modules then compile
    their programs again.
    """
    yield
    if _mapping_count() > _MAX_MAPPINGS:
        jax.clear_caches()
        gc.collect()
