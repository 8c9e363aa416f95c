"""The error a process stops on when what it was given cannot work."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """Settings, files or a cluster that do not fit what Loopline needs. The message says what
    was found and what to change; a service refuses to start with it, without a traceback."""


def settings_problem(exc: Exception) -> str | None:
    """One line per invalid setting of a pydantic `ValidationError` or pydantic-settings
    `SettingsError` (a variable that is not JSON), for a message without a traceback; None
    for any other exception."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, SettingsError):
        return f"invalid setting: {exc} (a JSON value was expected)"
    if not isinstance(exc, ValidationError):
        return None
    from loopline_runtime._secrets import redact

    lines = []
    for e in exc.errors():
        where = ".".join(map(str, e["loc"]))
        # A whole object's input (a check of several fields) holds its secrets in clear.
        got = f" (got {e['input']!r})" if "input" in e and e["loc"] else ""
        message = str(e["msg"]).removeprefix("Value error, ")
        lines.append(f"invalid setting {exc.title}{'.' + where if where else ''}: {message}{got}")
    return redact("; ".join(lines))
