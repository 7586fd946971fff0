"""Every GraphQL error leaves with a stable code; bugs lose their message outside debug."""

from __future__ import annotations

from graphql import GraphQLError, Source
from graphql.error import GraphQLSyntaxError

from commands.auth import AuthError, Forbidden
from read_api.errors import ConsistencyTimeout, NotFound, format_error


def resolver_error(original: Exception) -> GraphQLError:
    return GraphQLError(str(original), path=["device"], original_error=original)


def test_known_failures_keep_their_message_and_get_their_code() -> None:
    assert format_error(resolver_error(NotFound("no device x")), debug=False) == {
        "message": "no device x",
        "path": ["device"],
        "extensions": {"code": "NOT_FOUND"},
    }
    assert format_error(resolver_error(AuthError("expired")), debug=False)["extensions"] == {
        "code": "UNAUTHENTICATED"
    }
    assert format_error(resolver_error(Forbidden("no")), debug=False)["extensions"] == {
        "code": "FORBIDDEN"
    }
    timeout = format_error(resolver_error(ConsistencyTimeout(9, {"devices": 3}, 5)), debug=False)
    assert timeout["extensions"] == {
        "code": "CONSISTENCY_TIMEOUT",
        "position": 9,
        "reached": {"devices": 3},
    }


def test_bugs_are_masked_unless_debugging() -> None:
    bug = resolver_error(KeyError("password column"))

    assert format_error(bug, debug=False) == {
        "message": "Unexpected error.",
        "path": ["device"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }
    assert "password column" in format_error(bug, debug=True)["message"]


def test_parse_limits_are_too_complex_and_other_syntax_errors_are_parse_failures() -> None:
    source = Source("{")
    limit = GraphQLSyntaxError(source, 0, "Document contains more than 2 tokens. Parsing aborted.")
    syntax = GraphQLSyntaxError(source, 1, "Expected Name, found <EOF>.")

    assert format_error(limit, debug=False)["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert format_error(syntax, debug=False)["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
