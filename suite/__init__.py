"""GPU side of the suite: workload registry, sweep runner, timing, telemetry, records."""

__version__ = "0.1.0"
