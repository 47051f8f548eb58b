"""Every error the API answers is JSON `{"detail": "<what is wrong>"}` with a 4xx/5xx status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from egtr.data.images import ImageReadError

# ImageReadError.kind -> status: too many pixels 413, unknown or unsupported format 415, the rest 400
IMAGE_ERROR_STATUS = {"too_large": 413, "format": 415}


class ApiError(Exception):
    """An answer other than 200, with a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def busy(message: str) -> ApiError:
    """503 with Retry-After: the server cannot take the request now; the client may retry."""
    return ApiError(503, message, {"Retry-After": "1"})


def image_error(error: ImageReadError) -> ApiError:
    return ApiError(IMAGE_ERROR_STATUS.get(error.kind, 400), str(error))


def validation_message(error: RequestValidationError) -> str:
    """'query parameter top_k: Input should be greater than or equal to 1 (got "0")'; one per problem."""
    parts = []
    for problem in error.errors():
        location = [str(part) for part in problem.get("loc", ())]
        where = f"{location[0]} parameter {'.'.join(location[1:])}" if len(location) > 1 else "request"
        got = f" (got {problem['input']!r})" if "input" in problem and problem["input"] is not None else ""
        parts.append(f"{where}: {problem.get('msg', 'invalid')}{got}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    def answer(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return answer(error.status, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return answer(422, validation_message(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return answer(error.status_code, str(error.detail), getattr(error, "headers", None))
