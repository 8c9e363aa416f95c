"""The error a process stops on when what it was given cannot work."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """Settings, files or a cluster that do not fit what Loopline needs. The message says what
    was found and what to change; a service refuses to start with it, without a traceback."""
