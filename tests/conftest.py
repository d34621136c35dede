"""Test-session settings.

numba's OpenMP worker threads spin while idle; on a loaded 2-core machine
(process-pool tests, other jobs) that makes small parallel kernels 20x slower.
Passive waiting must be set before numba starts its thread pool.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
