"""Hand-written Triton kernels and their thin launchers, one module per family.

Nothing here knows about timing, records or the CLI: each module holds the
@triton.jit kernels, the launcher that checks shapes and launches them, and the
exact FLOP / minimum-byte count of one call.
"""
