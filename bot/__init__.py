"""dvc-assistant: a Vietnamese assistant for administrative procedures and public services."""

__version__ = "0.1.0"
