"""callgate: AI phone agents on real phone lines, behind a noise-robust speech gate."""

__version__ = "0.1.0"
