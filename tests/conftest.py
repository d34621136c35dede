"""Test-session settings.

numba's OpenMP worker threads spin while idle; on a loaded 2-core machine
(process-pool tests, other jobs) that makes small parallel kernels 20x slower.
Passive waiting must be set before numba starts its thread pool.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The on-disk tensor cache of the test session: a fresh directory (inherited by the CLI and
# sweep-worker subprocesses), so no test reads data an earlier session or the user drew.
if "SPARSESIM_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="sparsesim-test-cache-")
    os.environ["SPARSESIM_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
