"""Errors with messages meant for people."""


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class ConfigError(ValueError):
    """A config value is out of range or inconsistent."""


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM arrived (Ctrl+C, ``timeout``, SLURM pre-emption). A BaseException, so no
    ``except Exception`` treats it as a failure: the interrupted run is left unrecorded (a requeued job
    runs it again) and the process exits with 128 + the signal number (130, 143)."""

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def mark_recorded(exc: BaseException, entry: object) -> None:
    """Note on ``exc`` that the failed run was written to the zoo (at ``entry``)."""
    exc.gnnzoo_recorded = str(entry)  # type: ignore[attr-defined]


def recorded_entry(exc: BaseException) -> str | None:
    """Where the failure ``exc`` was recorded in the zoo, or None if nothing was written."""
    return getattr(exc, "gnnzoo_recorded", None)
