"""The building blocks of tarhold's OpenAPI document (openapi.py): operations, bodies, responses."""

from __future__ import annotations

from collections.abc import Sequence

from registry.http.openapi_schemas import STR, Schema, ref

ERRORS = {"BadRequest": "400", "Unauthorized": "401", "Forbidden": "403", "NotFound": "404",
          "Conflict": "409", "TooManyRequests": "429"}
PUBLIC: list[dict[str, list[str]]] = [{}]
READ_ERRORS = ("Unauthorized", "Forbidden", "NotFound", "TooManyRequests")
WRITE_ERRORS = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "TooManyRequests")
# Package paths come unscoped or with an encoded scope, and with a plain slash.
PACKAGE_FORMS: list[tuple[str, list[str], str]] = [
    ("/{package}", ["package"], ""),
    ("/@{scope}/{name}", ["scope", "name"], "Scoped"),
]


def json_body(schema: Schema, description: str = "") -> Schema:
    body: Schema = {"required": True, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def json_response(description: str, schema: Schema | str, media: str = "application/json") -> Schema:
    return {"description": description, "content": {media: {"schema": ref(schema) if isinstance(schema, str) else schema}}}


def query(name: str, description: str, schema: Schema = STR) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def op(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    description: str | None = None,
    params: Sequence[str] = (),
    extra_params: Sequence[Schema] = (),
    body: Schema | None = None,
    errors: Sequence[str] = (),
    security: list[dict[str, list[str]]] | None = None,
) -> Schema:
    """One operation object; `params` name components/parameters, `errors` components/responses."""
    operation: Schema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    parameters = [{"$ref": f"#/components/parameters/{p}"} for p in params] + list(extra_params)
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = {**responses, **{ERRORS[e]: {"$ref": f"#/components/responses/{e}"} for e in errors}}
    if security is not None:
        operation["security"] = security
    return operation
