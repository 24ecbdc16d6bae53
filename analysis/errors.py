"""The one error type analysis raises on bad input.

The CLI prints its message as a single line and exits with status 2, so every
message names the problem and, where there is a list of valid choices, lists it.
"""


class AnalysisError(ValueError):
    """Bad input to an analysis function: unknown spec, malformed record, unknown format."""

    def __init__(self, message: str):
        # One line, whatever the caller passed: the CLI shows it as is.
        super().__init__(" ".join(str(message).split()))
