"""The service's one error shape (``{"error": {message, type, param, code}}``) and the handlers that give every
failure that shape: our own refusals, schema and JSON errors, HTTP errors and bodies nested too deeply."""

from typing import Any

from pydantic import BaseModel

from lextune.extras import optional_import

optional_import("fastapi", "serve", "serving")
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc} for code, desc in {
        400: "A limit was exceeded or the input is not usable.",
        401: "Missing or wrong API key.",
        404: "Unknown model, or the feature is not loaded in this server.",
        413: "Request body too large.",
        422: "The body does not match the schema.",
    }.items()
}


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(status_code=err.status, content={"error": {
        "message": err.message, "type": err.type, "param": err.param, "code": err.code}})


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal in the API's one shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError):
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        if first.get("type") == "json_invalid":  # loc is ("body", character offset): not a field
            offset = next((x for x in first.get("loc", ()) if isinstance(x, int)), None)
            reason = (first.get("ctx") or {}).get("error") or first.get("msg", "invalid JSON")
            return error_response(ApiError(400, f"the body is not valid JSON ({reason}"
                                                + (f" at character {offset})" if offset is not None else ")"),
                                           code="invalid_json"))
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse(status_code=422, content={"error": {
            "message": f"{where or 'body'}: {first.get('msg', 'invalid request')}", "type": "invalid_request_error",
            "param": where or None, "code": "invalid_body"}})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException):
        codes = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
        message = err.detail if isinstance(err.detail, str) else "request refused"
        if err.status_code == 400 and "parsing the body" in message:
            message = "the body could not be parsed as JSON (not UTF-8, or nested too deeply)"
        response = error_response(ApiError(err.status_code, message, code=codes.get(err.status_code, "http_error")))
        for name, value in (getattr(err, "headers", None) or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RecursionError)
    async def _too_deep(_request: Request, _err: RecursionError):
        return error_response(ApiError(400, "the body is nested too deeply", code="invalid_json"))
