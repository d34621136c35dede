"""Dataflows: how layers are mapped and scheduled onto an accelerator."""
from ._nullhop import Geometry, LayerMapping, ScheduledLayer, map_conv, next_pow2, schedule_network

__all__ = ["Geometry", "LayerMapping", "ScheduledLayer", "map_conv", "next_pow2", "schedule_network"]
