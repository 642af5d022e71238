"""Errors a task raises to say how its failure should be treated."""


class TransientError(Exception):
    """Worth another attempt later: a provider timed out, a lock was busy, a service is down."""


class PermanentError(Exception):
    """Retrying cannot help: the job goes to the dead letters at once."""


class UnknownTask(LookupError):
    """The name does not belong to a function registered with ``@job``."""
