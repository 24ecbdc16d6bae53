"""Workload declarations, one module per kernel family. Importing this package registers them."""
from suite.registry import Workload, registered
from suite.workloads import attention, decode, gemm, intensity, overhead, streaming  # noqa: F401  (importing registers them)


def all_workloads() -> dict[str, Workload]:
    """Every declared workload, by name, in declaration order."""
    return registered()
