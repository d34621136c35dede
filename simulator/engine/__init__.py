"""The event-driven timing model over the dataflow's per-pass work.

One event model with two implementations that give identical results: a compiled
event loop (the default) and simpy processes (the readable reference); pick one with
``engine=``.
"""
from ._pipeline import ENGINES, PassTiming, check_engine, compiled_engine_cached, simulate_pipeline
from ._timing import time_layer

__all__ = ["ENGINES", "PassTiming", "check_engine", "compiled_engine_cached", "simulate_pipeline", "time_layer"]
