"""Domain errors: every rule violation has a name and a business message.

The HTTP and GraphQL layers map ``DomainError`` to 422 and ``NotFound`` to 404;
``code`` is the stable machine-readable name clients can switch on.
"""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a business rule; nothing was recorded."""

    code: str = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidValue(DomainError):
    """A command carried a value the domain cannot accept (bad hash, empty name...)."""

    code = "invalid_value"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class AlreadyExists(DomainError):
    code = "already_exists"
