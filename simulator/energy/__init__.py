"""Energy model: per-action energies from a sourced table, charged on the simulator's own counts."""
from ._model import (COMPONENTS, ActionCost, EnergyEntry, EnergyTable, action_costs, action_map, layer_energy,
                     load_energy_table, memory_capacities_kib, table_report)

__all__ = ["COMPONENTS", "ActionCost", "EnergyEntry", "EnergyTable", "action_costs", "action_map", "layer_energy",
           "load_energy_table", "memory_capacities_kib", "table_report"]
