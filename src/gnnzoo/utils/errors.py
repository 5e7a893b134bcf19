"""Errors with messages meant for people."""


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class ConfigError(ValueError):
    """A config value is out of range or inconsistent."""
