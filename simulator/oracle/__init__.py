"""The cycle-accuracy oracle: a clock-stepped reference model and the validation against it.

:func:`clocked_layer` steps every unit of the stripe pipeline one clock cycle
at a time; it shares no timing code with the event model
(``simulator.engine``) and reads only the dataflow's traits and pass plan.
:func:`validate_network` runs a network and compares both models layer by layer.
"""
from ._clocked import clocked_layer, exact_bandwidth, row_elements
from ._validate import ValidationReport, ValidationRow, crop_layer, validate_layer, validate_network

__all__ = ["ValidationReport", "ValidationRow", "clocked_layer", "crop_layer", "exact_bandwidth", "row_elements",
           "validate_layer", "validate_network"]
