"""Workload declarations, one module per kernel family. Importing registers them."""
from suite.workloads import attention, decode, gemm, streaming  # noqa: F401
