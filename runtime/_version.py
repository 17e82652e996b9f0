"""The distribution's version, kept apart so `cam-rt --version` imports nothing else."""

__version__ = "0.1.0"
