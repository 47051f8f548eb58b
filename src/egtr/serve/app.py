"""The FastAPI application: the scene-graph endpoint, model facts, health, and the page.

    POST /v1/scene-graph   an image (raw bytes or a multipart file) -> the same JSON as `egtr predict`
    GET  /v1/model         names, config summary, preprocessing, defaults, limits
    GET  /healthz          liveness, queue and batch counters
    GET  /                 the page (static/), OpenAPI docs at /docs

A request goes: token check -> options check -> admission (queue limit) -> body (size and time limits)
-> decoding by the predictor's image reading (formats, pixel limit) and preprocessing, a few at a time in
worker threads -> the batcher and the model thread -> `SceneGraph.to_dict()`. Every failure is a JSON
`{"detail": ...}` answer (errors.py); none stops the server.
"""

import asyncio
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from egtr.data.images import WEB_FORMATS, ImageReadError
from egtr.inference.predictor import PreparedImage, SceneGraphPredictor, Selection
from egtr.serve.batching import Batcher, ServerBusy
from egtr.serve.errors import ApiError, image_error, install_error_handlers
from egtr.serve.limits import ServerLimits
from egtr.serve.model_info import model_info
from egtr.serve.selection import selection_dependency
from egtr.serve.uploads import read_body, uploaded_image

STATIC = Path(__file__).parent / "static"
IMAGE_BODY = {"type": "string", "format": "binary"}
UPLOAD_DOCS = {
    "requestBody": {
        "required": True,
        "description": "An image file (JPEG, PNG, WebP, GIF, BMP, TIFF): the raw bytes as the body, or a "
        "multipart/form-data body with one file field (e.g. `image`).",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"image": IMAGE_BODY}, "required": ["image"]}
            },
            "application/octet-stream": {"schema": IMAGE_BODY},
            "image/*": {"schema": IMAGE_BODY},
        },
    }
}


def create_app(
    predictor: SceneGraphPredictor, limits: ServerLimits | None = None, model_name: str = "model"
) -> FastAPI:
    """The application serving `predictor`; its model thread runs while the app's lifespan lasts."""
    limits = limits or ServerLimits()
    batcher = Batcher(
        predictor.predict_prepared, limits.max_batch, limits.batch_wait_ms / 1000, limits.max_queue
    )
    # decoding runs on a few threads of its own: a bounded, stable set of threads keeps the allocator's
    # per-thread arenas few, so memory stays flat under load
    decoders = ThreadPoolExecutor(limits.decoders, thread_name_prefix="egtr-decode")
    started = time.monotonic()
    selection = selection_dependency(predictor)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()
            decoders.shutdown(wait=True)

    app = FastAPI(
        title="egtr scene graphs",
        description="EGTR scene graph generation: POST an image, get its objects and "
        "subject-predicate-object triplets as JSON (the same JSON as `egtr predict`).",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.limits = batcher, limits
    install_error_handlers(app)

    def authorized(request: Request) -> None:
        if limits.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), limits.token.encode()
        ):
            raise ApiError(
                401,
                "missing or wrong token: send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": "Bearer"},
            )

    def prepare(data: bytes, name: str) -> PreparedImage:
        try:
            image = replace(predictor.reading, max_pixels=limits.max_pixels).read(data, name, WEB_FORMATS)
        except ImageReadError as error:
            raise image_error(error) from error
        return predictor.preprocess(image, name)

    @app.post(
        "/v1/scene-graph",
        dependencies=[Depends(authorized)],
        openapi_extra=UPLOAD_DOCS,
        summary="The scene graph of one image",
        responses={code: {"description": text} for code, text in ERROR_RESPONSES.items()},
    )
    async def scene_graph(request: Request, chosen: Annotated[Selection, Depends(selection)]) -> JSONResponse:
        arrival = time.monotonic()
        try:
            batcher.arrive()
        except ServerBusy as error:
            raise ApiError(503, str(error), {"Retry-After": "1"}) from error
        try:
            body = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
            data, name = await uploaded_image(request, body)
            prepared = await asyncio.get_running_loop().run_in_executor(decoders, prepare, data, name)
        except BaseException:
            batcher.leave()
            raise
        answer = asyncio.wrap_future(batcher.submit(prepared, chosen))
        remaining = limits.timeout_s - (time.monotonic() - arrival)
        try:
            graph = await asyncio.wait_for(answer, max(remaining, 0.001))
        except asyncio.TimeoutError as error:
            raise ApiError(
                503,
                f"no answer within the {limits.timeout_s:g} s request timeout: the server is busy",
                {"Retry-After": "1"},
            ) from error
        except ServerBusy as error:
            raise ApiError(503, str(error)) from error
        except Exception as error:
            raise ApiError(500, f"{name}: the model failed ({type(error).__name__}: {error})") from error
        return JSONResponse(graph.to_dict())

    @app.get("/v1/model", dependencies=[Depends(authorized)], summary="The model and the server's settings")
    async def model() -> dict:
        return model_info(predictor, model_name, limits)

    @app.get("/healthz", summary="Liveness, queue and batch counters")
    async def health() -> dict:
        uptime = round(time.monotonic() - started, 3)
        return {"status": "ok", "model": model_name, "uptime_s": uptime, **batcher.report()}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


ERROR_RESPONSES = {
    400: "empty body, bad multipart body, corrupt image",
    401: "missing or wrong bearer token (only when the server has one)",
    408: "the body did not arrive within the body timeout",
    413: "body or image (pixels) above the limit",
    415: "not an image, or a format the server does not take",
    422: "a bad or unknown query option",
    500: "the model failed on the image",
    503: "queue full or request timeout; retry later",
}
