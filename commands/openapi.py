"""The OpenAPI 3.1 document, generated from the command registry.

Bodies come from the same msgspec structs the endpoint decodes with, so the
document cannot drift from what the server accepts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from commands.spec import CommandSpec

_ERROR = {"$ref": "#/components/schemas/Error"}

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "current_version": {"type": "integer"},
            },
        }
    },
}

_RESULT_SCHEMA = {
    "type": "object",
    "required": ["aggregate_id", "version", "position"],
    "properties": {
        "command": {"type": "string"},
        "aggregate_type": {"type": "string"},
        "aggregate_id": {"type": "string", "format": "uuid"},
        "version": {"type": "integer", "description": "aggregate version after the commit"},
        "position": {
            "type": "integer",
            "description": "global commit position; pass it to queries for read-your-writes",
        },
        "event_count": {"type": "integer"},
        "events": {"type": "array", "items": {"type": "string"}},
        "duplicate": {
            "type": "boolean",
            "description": "true when an earlier request with this Idempotency-Key answered",
        },
    },
}

_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:~+/=-]{1,200}$"},
        "description": "Retrying with the same key returns the first result and commits nothing.",
    },
    {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Expected aggregate version; 409 with the current version if different.",
    },
]


def _responses() -> dict[str, Any]:
    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": _ERROR}}}

    return {
        "201": {
            "description": "Committed",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CommandResult"}}
            },
        },
        "200": {
            "description": "Idempotent replay: the first result for this Idempotency-Key",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CommandResult"}}
            },
        },
        "400": error("Malformed JSON, missing or mistyped field, or bad header"),
        "401": error("Missing or invalid bearer token"),
        "403": error("Role not allowed to send this command"),
        "404": error("Unknown command or aggregate"),
        "409": error("If-Match version mismatch or concurrent write; carries current_version"),
        "413": error("Body over the size limit"),
        "422": error("Business rule violated"),
    }


def openapi_document(commands: dict[str, CommandSpec[Any]], version: str) -> dict[str, Any]:
    bodies = [spec.body for spec in commands.values()]
    _, components = msgspec.json.schema_components(
        bodies, ref_template="#/components/schemas/{name}"
    )
    components["Error"] = _ERROR_SCHEMA
    components["CommandResult"] = _RESULT_SCHEMA
    paths: dict[str, Any] = {}
    for name, spec in commands.items():
        paths[f"/commands/{name}"] = {
            "post": {
                "operationId": name,
                "summary": spec.summary or name,
                "tags": [spec.aggregate_type],
                "description": f"Requires role {spec.role.name} or above.",
                "security": [{"bearer": []}],
                "parameters": _HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}
                        }
                    },
                },
                "responses": _responses(),
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigil command API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
