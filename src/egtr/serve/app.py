"""The FastAPI application: the scene-graph endpoint, model facts, health, and the page.

    POST /v1/scene-graph   an image (raw bytes or a multipart file) -> the same JSON as `egtr predict`
    GET  /v1/model         names, config summary, preprocessing, defaults, limits
    GET  /healthz          liveness, queue and batch counters
    GET  /                 the page (static/), OpenAPI docs at /docs

A request goes: connection limits (connections.py) -> Host and Origin checks (origins.py) -> token
check -> options check -> body, read within its own budget and deadline (uploads.py, upload_budget.py)
-> admission to the model queue (only now: a request whose body has not arrived holds no queue slot) ->
decoding within the decoded-image budget (decoding.py) -> the batcher and the model thread ->
`SceneGraph.to_dict()`. Every failure is a JSON `{"detail": ...}` answer (errors.py); none stops the
server. The API docs at /docs are Swagger UI served from its copy in the fastapi-offline package (not
from a CDN; no validator): the page loads nothing from elsewhere.
"""

import asyncio
import hmac
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from egtr.inference.predictor import SceneGraphPredictor, Selection
from egtr.serve.batching import Batcher, ServerBusy
from egtr.serve.connections import ConnectionGuard, ConnectionTracking
from egtr.serve.decoding import Decoder
from egtr.serve.errors import ApiError, busy, install_error_handlers
from egtr.serve.limits import ServerLimits
from egtr.serve.model_info import model_info
from egtr.serve.origins import LOCAL_NAMES, OriginCheck
from egtr.serve.selection import selection_dependency
from egtr.serve.upload_budget import UploadBudget
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
    predictor: SceneGraphPredictor,
    limits: ServerLimits | None = None,
    model_name: str = "model",
    allowed_hosts: tuple[str, ...] | None = LOCAL_NAMES,
    worker: int = 0,
    workers: int = 1,
) -> FastAPI:
    """The application serving `predictor`; its model thread runs while the app's lifespan lasts.
    `allowed_hosts`: the Host names a token-less server answers (None: any); `worker`: this process's
    number among the `workers` processes serving the port."""
    limits = limits or ServerLimits()
    batcher = Batcher(
        predictor.predict_prepared, limits.max_batch, limits.batch_wait_ms / 1000, limits.max_queue
    )
    decoder = Decoder(predictor, limits)
    uploads = UploadBudget(limits.max_upload_bytes_in_flight, limits.max_body_bytes, limits.max_stall_s)
    guard = ConnectionGuard(limits.max_connections, limits.max_connections_per_client, limits.head_timeout_s)
    started = time.monotonic()
    selection = selection_dependency(predictor)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()
            decoder.shutdown()

    app = FastAPIOffline(
        title="egtr scene graphs",
        description="EGTR scene graph generation: POST an image, get its objects and "
        "subject-predicate-object triplets as JSON (the same JSON as `egtr predict`).",
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would ask an outside validator
        redoc_url=None,  # ReDoc's bundle fetches its logo from its makers' site
    )
    app.state.batcher, app.state.limits, app.state.guard = batcher, limits, guard
    install_error_handlers(app)
    app.add_middleware(OriginCheck, allowed_hosts=None if limits.token else allowed_hosts)
    app.add_middleware(ConnectionTracking, guard=guard)

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

    @app.post(
        "/v1/scene-graph",
        dependencies=[Depends(authorized)],
        openapi_extra=UPLOAD_DOCS,
        summary="The scene graph of one image",
        responses={code: {"description": text} for code, text in ERROR_RESPONSES.items()},
    )
    async def scene_graph(request: Request, chosen: Annotated[Selection, Depends(selection)]) -> JSONResponse:
        body = await read_body(request, limits, uploads)
        try:
            start, end, name = uploaded_image(request, body)
            admitted = time.monotonic()
            try:
                batcher.arrive()
            except ServerBusy as error:
                raise busy(str(error)) from error
            try:
                prepared, tensor_bytes = await decoder.prepare(body, start, end, name, limits.timeout_s)
            except BaseException:
                batcher.leave()
                raise
        finally:
            body.close()
        job = batcher.submit(prepared, chosen)
        loop = asyncio.get_running_loop()
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(decoder.budget.release, tensor_bytes))
        remaining = limits.timeout_s - (time.monotonic() - admitted)
        try:
            graph = await asyncio.wait_for(asyncio.wrap_future(job), max(remaining, 0.001))
        except asyncio.TimeoutError as error:
            raise busy(
                f"no answer within the {limits.timeout_s:g} s request timeout: the server is busy"
            ) from error
        except ServerBusy as error:
            raise busy(str(error)) from error
        except Exception as error:
            raise ApiError(500, f"{name}: the model failed ({type(error).__name__}: {error})") from error
        return JSONResponse(graph.to_dict())

    @app.get("/v1/model", dependencies=[Depends(authorized)], summary="The model and the server's settings")
    async def model() -> dict:
        return model_info(predictor, model_name, limits, workers)

    @app.get("/healthz", summary="Liveness, queue, batch, connection and budget counters")
    async def health() -> dict:
        uptime = round(time.monotonic() - started, 3)
        return {
            "status": "ok",
            "model": model_name,
            "worker": worker,
            "pid": os.getpid(),
            "uptime_s": uptime,
            **batcher.report(),
            **guard.report(),
            **uploads.report(),
            **decoder.budget.report(),
        }

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


ERROR_RESPONSES = {
    400: "empty body, bad multipart body, corrupt image; a Host that is not this server's (no token)",
    401: "missing or wrong bearer token (only when the server has one)",
    403: "a cross-origin browser request",
    408: "the body arrived slower than --body-timeout and --min-upload-rate allow",
    413: "body, image (pixels) or its decoding memory above the limit",
    429: "too many connections from one client address",
    415: "not an image, or a format the server does not take",
    422: "a bad or unknown query option",
    500: "the model failed on the image",
    503: "queue or connections full, or request timeout; retry later",
}
