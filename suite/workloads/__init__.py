"""Workload declarations, one module per kernel family. Importing registers them."""
import importlib

# Each family's module registers its workloads when imported. A family whose
# module is absent (not yet written) is simply not offered.
for _family in ("streaming", "gemm", "attention", "decode"):
    try:
        importlib.import_module(f"suite.workloads.{_family}")
    except ModuleNotFoundError as e:
        if e.name != f"suite.workloads.{_family}":
            raise
