"""The one place where read-side failures become GraphQL errors.

Every error a client sees carries ``extensions.code``, stable for clients to
switch on; ``message`` is for people:

* ``UNAUTHENTICATED``, ``FORBIDDEN``: the token, as on the command API;
* ``NOT_FOUND``: no such aggregate *for this tenant* (another tenant's id reads
  exactly like an id that never existed);
* ``BAD_USER_INPUT``: an argument the resolver cannot use (bad cursor, page
  size out of range, naive timestamp...);
* ``QUERY_TOO_COMPLEX``: the document is too long, too deep or has too many
  aliases or tokens;
* ``CONSISTENCY_TIMEOUT``: the read models did not reach the requested
  position in time;
* ``GRAPHQL_PARSE_FAILED``, ``GRAPHQL_VALIDATION_FAILED``: the document itself;
* ``INTERNAL_SERVER_ERROR``: a bug; its message is masked unless in debug mode.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from commands.auth import AuthError, Forbidden

log = logging.getLogger(__name__)

MASKED_MESSAGE = "Unexpected error."


class ReadApiError(Exception):
    """An error the read API raises on purpose; its message is safe to show."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class BadInput(ReadApiError):
    code = "BAD_USER_INPUT"


class NotFound(ReadApiError):
    code = "NOT_FOUND"


class QueryTooComplex(ReadApiError):
    code = "QUERY_TOO_COMPLEX"


class ConsistencyTimeout(ReadApiError):
    code = "CONSISTENCY_TIMEOUT"

    def __init__(self, position: int, reached: dict[str, int], timeout: float) -> None:
        behind = ", ".join(f"{name} at {at}" for name, at in sorted(reached.items()))
        super().__init__(
            f"read models did not reach position {position} within {timeout:g}s "
            f"({behind}); retry, or raise the wait",
            position=position,
            reached=reached,
        )


def too_complex(message: str) -> GraphQLError:
    """A validation error for a document that breaks a limit."""
    return GraphQLError(message, extensions={"code": QueryTooComplex.code})


def error_code(error: GraphQLError) -> str:
    """The stable code of one error, from what raised it."""
    original = error.original_error
    if isinstance(original, ReadApiError):
        return original.code
    if isinstance(original, AuthError):
        return "UNAUTHENTICATED"
    if isinstance(original, Forbidden):
        return "FORBIDDEN"
    coded = (error.extensions or {}).get("code")
    if isinstance(coded, str):
        return coded
    if isinstance(error, GraphQLSyntaxError):
        # graphql-core ends every limit it enforces while parsing this way.
        if error.message.endswith("Parsing aborted."):
            return QueryTooComplex.code
        return "GRAPHQL_PARSE_FAILED"
    if error.path is None:
        # Before execution: variables that do not coerce to their types.
        return BadInput.code
    return "INTERNAL_SERVER_ERROR"


def format_error(error: GraphQLError, *, debug: bool) -> dict[str, Any]:
    """The error as sent to the client: coded, and masked when it is a bug."""
    code = error_code(error)
    formatted: dict[str, Any] = error.formatted  # type: ignore[assignment]
    extensions = dict(formatted.get("extensions") or {})
    extensions["code"] = code
    original = error.original_error
    if isinstance(original, ReadApiError):
        extensions.update(original.extra)
    if code == "INTERNAL_SERVER_ERROR" and not debug:
        formatted = {k: v for k, v in formatted.items() if k in ("locations", "path")}
        formatted["message"] = MASKED_MESSAGE
    formatted["extensions"] = extensions
    return formatted


def is_expected(error: GraphQLError) -> bool:
    """True for errors that are the client's business, not the operator's."""
    return error_code(error) != "INTERNAL_SERVER_ERROR"


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        if not is_expected(error):
            original = error.original_error
            exc_info = (type(original), original, original.__traceback__) if original else None
            log.error("GraphQL resolver failed: %s", error.message, exc_info=exc_info)
