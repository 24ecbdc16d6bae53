"""GPU-free analysis: records in, measured ceilings, roofline tables, plots and comparisons out.

Imports neither torch nor triton, so every report runs on any machine from a
results file.
"""
