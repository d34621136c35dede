"""The event-driven timing model: simpy processes over the dataflow's per-pass work."""
from ._pipeline import PassTiming, simulate_pipeline
from ._timing import time_layer

__all__ = ["PassTiming", "simulate_pipeline", "time_layer"]
