"""The HTTP API through FastAPI's test client: every endpoint, every limit, every bad input."""

import re
import time

import pytest

from egtr import SceneGraphPredictor
from egtr.serve import ServerLimits
from tests.inference.conftest import FAST, random_pixels, small_model
from tests.inference.test_scene_graph import check_schema

from .conftest import LIMITS, client_for, decoded, encoded, photo

ENDPOINT = "/v1/scene-graph"


def test_raw_and_multipart_uploads_answer_the_predictors_graph(client, predictor):
    body = photo()
    raw = client.post(ENDPOINT, content=body, headers={"Content-Type": "image/png"})
    form = client.post(ENDPOINT, files={"image": ("street.png", body, "image/png")})
    assert raw.status_code == form.status_code == 200
    expected = predictor.predict(decoded(body)).to_dict()
    assert raw.json() == {**expected, "image": "upload"}
    assert form.json() == {**expected, "image": "street.png"}
    check_schema(raw.json())
    # no content type at all, and a misleading one: the bytes decide
    assert client.post(ENDPOINT, content=body, headers={"Content-Type": "text/plain"}).json() == raw.json()


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 3},
        {"threshold": 0.012},
        {"graph_constraint": False, "top_k": 20},
        {"object_score": "sigmoid"},
        {"object_threshold": 0.0},
        {"dedup_iou": 0.5},
    ],
)
def test_query_options_answer_what_a_predictor_with_them_predicts(client, options):
    body = photo(seed=3)
    answer = client.post(ENDPOINT, params=options, content=body)
    assert answer.status_code == 200, answer.text
    expected = SceneGraphPredictor(small_model(), **FAST, **options).predict(decoded(body))
    assert answer.json() == {**expected.to_dict(), "image": "upload"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("top_k=0", "query parameter top_k: Input should be greater than or equal to 1 (got '0')"),
        ("top_k=many", "query parameter top_k: Input should be a valid integer"),
        ("top_k=100000", "query parameter top_k: Input should be less than or equal to 10000"),
        ("threshold=-0.5", "query parameter threshold: Input should be greater than or equal to 0"),
        ("threshold=nan", "query parameter threshold"),
        ("graph_constraint=maybe", "query parameter graph_constraint: Input should be a valid boolean"),
        ("object_score=argmax", "query parameter object_score: Input should be 'softmax' or 'sigmoid'"),
        ("dedup_iou=1", "query parameter dedup_iou: Input should be less than 1"),
        ("object_threshold=2", "query parameter object_threshold: Input should be less than or equal to 1"),
        ("topk=5", "unknown query parameter(s) topk; known: top_k, threshold"),
    ],
)
def test_bad_options_get_422_naming_the_option(client, query, message):
    answer = client.post(f"{ENDPOINT}?{query}", content=photo())
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(message)


def truncated_png() -> bytes:
    body = photo()
    return body[: len(body) // 2]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "empty request body"),
        (b"\xff\xd8\xff\xe0 a JPEG header, then nothing", 400, "upload: corrupt or truncated image"),
        (b"plain text, no image at all", 415, "upload: not an image in a supported format (JPEG, PNG, WEBP"),
        (encoded(random_pixels(16, 16), "ICO"), 415, "upload: not an image in a supported format"),
        (truncated_png(), 400, "upload: corrupt or truncated image"),
        (photo(200, 150), 413, "upload: image too large: 200 x 150 = 30000 pixels, above the limit of 20000"),
        (b"\x00" * 300_000, 413, "request body of 300000 bytes is above the limit of 200000 bytes"),
    ],
)
def test_bad_bodies_get_4xx_naming_the_problem(client, body, status, message):
    answer = client.post(ENDPOINT, content=body)
    assert (answer.status_code, answer.json()["detail"][: len(message)]) == (status, message)


def test_a_body_without_length_is_cut_at_the_limit(client):
    def chunks():  # sent chunked, without Content-Length
        for _ in range(30):
            yield b"\x00" * 10_000

    answer = client.post(ENDPOINT, content=chunks())
    assert answer.status_code == 413
    assert answer.json()["detail"] == "request body is above the limit of 200000 bytes"


@pytest.mark.parametrize(
    ("files", "data", "message"),
    [
        ({"note": (None, "no file here")}, None, "the multipart body has no file part"),
        ({"image": ("empty.png", b"", "image/png")}, None, "the uploaded file 'empty.png' is empty"),
        (
            [("a", ("a.png", photo(), "image/png")), ("b", ("b.png", photo(), "image/png"))],
            None,
            "bad multipart",
        ),
        (
            {"image": ("notes.txt", b"hello", "text/plain")},
            None,
            "notes.txt: not an image in a supported format",
        ),
    ],
)
def test_bad_multipart_uploads_get_4xx(client, files, data, message):
    answer = client.post(ENDPOINT, files=files, data=data)
    assert answer.status_code in (400, 415) and answer.json()["detail"].startswith(message)


def test_multipart_without_boundary_is_a_bad_request(client):
    answer = client.post(ENDPOINT, content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    assert answer.status_code == 400 and "boundary" in answer.json()["detail"].lower()


def test_the_server_stays_up_after_bad_requests(client):
    for body in (b"", b"junk", truncated_png(), b"\x00" * 300_000, photo(200, 150)):
        assert 400 <= client.post(ENDPOINT, content=body).status_code < 500
    assert client.post(ENDPOINT, content=photo()).status_code == 200
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["images"] == 1 and health["arriving"] == health["waiting"] == 0


def test_model_endpoint_describes_names_config_preprocessing_and_limits(client):
    model = client.get("/v1/model").json()
    assert model["name"] == "small-random" and model["device"] == "cpu"
    assert model["classes"] == [f"class_{i}" for i in range(12)] and len(model["predicates"]) == 6
    assert model["config"]["num_queries"] == 12 and model["config"]["backbone_depth"] == 18
    assert (
        model["preprocessing"]["size"] == FAST["size"]
        and model["preprocessing"]["max_size"] == FAST["max_size"]
    )
    assert model["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert "PNG" in model["preprocessing"]["formats"]
    assert model["defaults"] == {
        "top_k": 100,
        "threshold": 0.0,
        "graph_constraint": True,
        "dedup_iou": None,
        "object_threshold": None,
        "object_score": "softmax",
    }
    assert model["limits"]["max_body_bytes"] == 200_000 and model["limits"]["token_required"] is False
    assert model["parameters"] > 1_000_000


def test_health_counts_images_and_batches(client):
    for seed in range(3):
        client.post(ENDPOINT, content=photo(seed=seed))
    health = client.get("/healthz").json()
    assert (health["status"], health["images"]) == ("ok", 3)
    assert sum(int(size) * count for size, count in health["batch_sizes"].items()) == 3


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/v2/nothing").status_code == 404
    answer = client.get(ENDPOINT)
    assert answer.status_code == 405 and answer.json() == {"detail": "Method Not Allowed"}


def test_openapi_docs_list_the_endpoints_and_the_upload(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/v1/scene-graph", "/v1/model", "/healthz"} <= set(schema["paths"])
    post = schema["paths"]["/v1/scene-graph"]["post"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(post["requestBody"]["content"])
    assert {p["name"] for p in post["parameters"]} == {
        "top_k",
        "threshold",
        "graph_constraint",
        "object_score",
        "dedup_iou",
        "object_threshold",
    }


def test_the_page_and_its_files_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {"/static/app.js", "/static/style.css"} <= set(assets)
    for asset in assets:
        assert asset.startswith(("/static/", "data:"))
    for name in ("app.js", "style.css"):
        text = client.get(f"/static/{name}").text
        urls = set(re.findall(r"https?://[^\s\"')]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace is a name, not a download
        assert "@import" not in text and "url(" not in text


@pytest.fixture
def token_client(predictor):
    limits = ServerLimits(token="s3cret", max_pixels=20_000)
    with client_for(predictor, limits) as test_client:
        yield test_client


def test_a_token_guards_the_api_but_not_health_or_the_page(token_client):
    for path, method in (("/v1/model", "get"), (ENDPOINT, "post")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            answer = getattr(token_client, method)(path, headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer <token>" in answer.json()["detail"]
    good = {"Authorization": "Bearer s3cret"}
    assert token_client.post(ENDPOINT, content=photo(), headers=good).status_code == 200
    model = token_client.get("/v1/model", headers=good).json()
    assert model["limits"]["token_required"] is True and "s3cret" not in str(model)
    assert token_client.get("/healthz").status_code == token_client.get("/").status_code == 200


def slow_predictor(monkeypatch, seconds: float = 0.0, error: Exception | None = None):
    """A predictor whose forward pass waits `seconds`, then raises `error` or predicts."""
    predictor = SceneGraphPredictor(small_model(), **FAST)
    predict = predictor.predict_prepared

    def delayed(batch, selections=None):
        time.sleep(seconds)
        if error is not None:
            raise error
        return predict(batch, selections)

    monkeypatch.setattr(predictor, "predict_prepared", delayed)
    return predictor


def test_a_request_over_the_timeout_gets_503_and_the_server_goes_on(monkeypatch):
    predictor = slow_predictor(monkeypatch, seconds=1.0)
    with client_for(predictor, ServerLimits(timeout_s=0.2)) as client:
        answer = client.post(ENDPOINT, content=photo())
        assert answer.status_code == 503
        assert answer.json()["detail"] == "no answer within the 0.2 s request timeout: the server is busy"
        assert answer.headers["retry-after"] == "1"
    with client_for(predictor, ServerLimits(timeout_s=30)) as client:
        assert client.post(ENDPOINT, content=photo()).status_code == 200


def test_a_model_failure_gets_500_naming_it_and_the_server_stays_up(monkeypatch):
    predictor = slow_predictor(monkeypatch, error=RuntimeError("out of memory"))
    with client_for(predictor) as client:
        answer = client.post(ENDPOINT, files={"image": ("cat.png", photo(), "image/png")})
        assert answer.status_code == 500
        assert answer.json()["detail"] == "cat.png: the model failed (RuntimeError: out of memory)"
        assert client.get("/healthz").json()["failed_batches"] == 1


def test_a_full_queue_answers_503_at_once(client):
    batcher = client.app.state.batcher
    for _ in range(LIMITS.max_queue):
        batcher.arrive()  # requests that are still on their way
    answer = client.post(ENDPOINT, content=photo())
    assert answer.status_code == 503 and answer.json()["detail"].startswith(
        "server busy: 64 requests are waiting"
    )
    for _ in range(LIMITS.max_queue):
        batcher.leave()
    assert client.post(ENDPOINT, content=photo()).status_code == 200
