"""A real ``cam-rt serve`` process on 127.0.0.1: concurrent clients get the Explainer's (and
``cam-rt run``'s) maps, bad input is a JSON error and the server lives on, metadata, metrics
(parsed with prometheus_client), a full queue (503), timeouts (504), graceful shutdown."""

from __future__ import annotations

import base64
import io
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.cli import get_app
from tests.onnx_models import channel_model

from .servers import Server, bomb_png, encoded, many, picture, running

NAMES = ("red", "green", "blue")
TTA = TTAConfig(scales=(0.5, 1.0, 1.5), flip=True)
OPTIONS = ("--tta", "--scales", "0.5,1,1.5", "--classes", "all", "--max-wait-ms", "100")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve")
    return channel_model(folder / "shapes.onnx", channels=3, offset=0.4, class_names=NAMES)


@pytest.fixture(scope="module")
def server(model: Path) -> Iterator[Server]:
    with running(model, *OPTIONS, "--max-body-mb", "1") as srv:
        yield srv


def _maps(payload: dict[str, Any]) -> np.ndarray:
    with np.load(io.BytesIO(base64.b64decode(payload["outputs"]["maps"]["b64"]))) as data:
        return np.asarray(data["maps"])


def test_concurrent_clients_get_the_explainers_maps(server: Server, model: Path) -> None:
    pictures = [picture(40 + 8 * (i % 3), 56, seed=i) for i in range(12)]
    bodies = [encoded(p) for p in pictures]
    explainer = Explainer(CamSession(model), ExplainConfig(tta=TTA, classes=ClassSelection("all")))

    def post(i: int) -> dict[str, Any]:
        query = "outputs=maps" if i % 2 else "outputs=maps&tta=off"
        r = httpx.post(f"{server.url}/v1/explain?{query}", content=bodies[i], timeout=60)
        assert r.status_code == 200, r.text
        return dict(r.json())

    answers = many(8, post, range(len(bodies)))
    plain = Explainer(explainer.session, ExplainConfig(classes=ClassSelection("all")))
    for i, answer in enumerate(answers):
        (want,) = (explainer if i % 2 else plain).explain(pictures[i])
        assert answer["size"] == list(pictures[i].shape[:2])
        assert [c["id"] for c in answer["classes"]] == [0, 1, 2]
        got = [c["probability"] for c in answer["classes"]]
        np.testing.assert_allclose(got, want.probabilities, atol=2e-6)
        np.testing.assert_allclose(_maps(answer), want.maps, atol=1e-3)  # float16 in the npz
        assert set(answer["timings"]) >= {"decode_s", "queue_s", "explain_s", "render_s"}
    assert max(a["batch"] for a in answers) > 1  # concurrent requests shared explain calls
    families = {
        f.name: f for f in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text)
    }
    batches = {s.name: s.value for s in families["cam_rt_batch_images"].samples}
    assert batches["cam_rt_batch_images_sum"] >= 12 > batches["cam_rt_batch_images_count"]


def test_the_same_maps_as_cam_rt_run(server: Server, model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(encoded(picture(48, 40 + 16 * i, seed=i), "JPEG"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        get_app(),
        [
            "run",
            str(model),
            str(folder),
            "-o",
            str(out),
            "--save",
            "maps,seeds,overlay",
            "-q",
            "--tta",
            "--scales",
            "0.5,1,1.5",
            "--classes",
            "all",
        ],
    )
    assert result.exit_code == 0, result.output
    for i in range(3):
        body = (folder / f"p{i}.jpg").read_bytes()
        r = httpx.post(
            f"{server.url}/v1/explain?outputs=maps,seeds,overlay", content=body, timeout=60
        )
        answer = r.json()
        with np.load(out / f"p{i}.maps.npz") as written:
            np.testing.assert_array_equal(_maps(answer), written["maps"])
        assert (
            base64.b64decode(answer["outputs"]["seeds"]) == (out / f"p{i}.seeds.png").read_bytes()
        )
        assert (
            base64.b64decode(answer["outputs"]["overlay"])
            == (out / f"p{i}.overlay.png").read_bytes()
        )


def test_kserve_explain_and_model_metadata(server: Server) -> None:
    pictures = [picture(32, 48, seed=7), picture(40, 40, seed=8)]
    body = {"instances": [{"b64": base64.b64encode(encoded(p)).decode()} for p in pictures]}
    r = httpx.post(f"{server.url}/v1/models/shapes:explain?classes=blue,0", json=body, timeout=60)
    assert r.status_code == 200, r.text
    explanations = r.json()["explanations"]
    assert [e["size"] for e in explanations] == [[32, 48], [40, 40]]
    assert [c["name"] for c in explanations[0]["classes"]] == ["blue", "red"]
    single = httpx.post(
        f"{server.url}/v1/explain?classes=blue,0", content=encoded(pictures[1]), timeout=60
    )
    assert single.json()["classes"] == explanations[1]["classes"]
    meta = httpx.get(f"{server.url}/v1/models/shapes").json()
    assert meta["classes"] == list(NAMES) and meta["ready"] is True
    assert meta["tta"] == {"default": True, "scales": [0.5, 1.0, 1.5], "flip": True, "mode": "mean"}
    assert meta["method"] == "cam" and meta["input_size"] is None
    assert httpx.get(f"{server.url}/v1/models/other").status_code == 404


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a plain socket; the status, headers and body of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":")[1])
    return 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "the request body is empty"),
        (b"GIF89a not really", 400, "not an image Pillow can read"),
        (b"<html>hello</html>", 400, "not an image Pillow can read"),
        (encoded(picture(64, 64))[:300], 400, "corrupt or truncated image data"),
        (bomb_png(), 413, "is 100000x100000 pixels"),
    ],
)
def test_bad_bodies_get_json_errors(server: Server, body: bytes, status: int, message: str) -> None:
    r = httpx.post(f"{server.url}/v1/explain", content=body, timeout=30)
    assert r.status_code == status and message in r.json()["error"]
    assert "Traceback" not in r.text and "\n" not in r.json()["error"]


def test_bad_options_and_paths(server: Server) -> None:
    body = encoded(picture(32, 32))
    cases = [
        (
            "/v1/explain?classes=gren,bleu",
            400,
            "class 'gren' is not one of the model's classes (closest: green)",
        ),
        ("/v1/explain?classes=7", 400, "class id 7 is out of range"),
        ("/v1/explain?outputs=masks", 400, "outputs=masks is unknown"),
        ("/v1/explain?size=3", 400, "query option 'size' is unknown"),
        ("/v1/models/other:explain", 404, "model 'other' is not served here"),
        ("/v2/explain", 404, "Not Found"),
    ]
    for path, status, message in cases:
        r = httpx.post(server.url + path, content=body, timeout=30)
        assert (r.status_code, message in r.json()["error"]) == (status, True), (path, r.text)
    assert httpx.get(f"{server.url}/v1/explain").status_code == 405
    for document, message in [
        (b"{not json", "the body is not JSON"),
        (b'{"instances": [{"b64": "@@"}]}', "instance 0: its b64 is not valid base64"),
        (
            json.dumps({"instances": [{"b64": base64.b64encode(b"junk").decode()}]}).encode(),
            "instance 0 is not an image",
        ),
    ]:
        r = httpx.post(f"{server.url}/v1/models/shapes:explain", content=document, timeout=30)
        assert r.status_code == 400 and message in r.json()["error"], r.text


def test_a_large_body_is_refused_unread(server: Server) -> None:
    """Content-Length above --max-body-mb (1 MB here): 413 without the body ever being sent;
    a chunked body is cut at the limit."""
    head = b"POST /v1/explain HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000000\r\n\r\n"
    status, headers, body = _raw(server.url, head)
    assert status == 413 and "above --max-body-mb" in json.loads(body)["error"]
    assert headers["content-type"] == "application/json"

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"\x00" * 65536

    r = httpx.post(f"{server.url}/v1/explain", content=chunks(), timeout=30)
    assert r.status_code == 413 and "above --max-body-mb" in r.json()["error"]
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # and the server lives on


def test_metrics_count_requests_by_route_and_status(server: Server) -> None:
    httpx.post(f"{server.url}/v1/explain", content=b"", timeout=30)
    text = httpx.get(f"{server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "cam_rt_requests",
        "cam_rt_request_seconds",
        "cam_rt_queue_depth",
        "cam_rt_batch_images",
        "cam_rt_model_seconds",
    } <= set(families)
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["cam_rt_requests"].samples
        if s.name == "cam_rt_requests_total"
    }
    assert counts[("/v1/explain", "400")] >= 1 and counts[("/healthz", "200")] >= 1
    assert [s.value for s in families["cam_rt_queue_depth"].samples] == [0.0]


def test_a_full_queue_is_503_and_a_late_answer_504(model: Path) -> None:
    """One image explained at a time, one waiting: the others are 503 with Retry-After; with a
    timeout shorter than an explain call, 504."""
    slow = encoded(picture(1200, 1200, seed=3))
    options = (
        "--tta",
        "--scales",
        "1,2,3",
        "--max-queue",
        "1",
        "--max-batch",
        "1",
        "--max-pixels",
        "20000000",
    )
    with running(model, *options, "--max-wait-ms", "0") as srv:

        def post(_: int) -> httpx.Response:
            return httpx.post(f"{srv.url}/v1/explain", content=slow, timeout=120)

        answers = many(8, post, range(8))
        codes = sorted(r.status_code for r in answers)
        assert 503 in codes and 200 in codes and set(codes) <= {200, 503}, codes
        busy = next(r for r in answers if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "the queue is full" in busy.json()["error"]
    with running(model, *options, "--timeout-s", "0.05") as srv:
        r = httpx.post(f"{srv.url}/v1/explain", content=slow, timeout=120)
        assert r.status_code == 504 and "no answer within --timeout-s 0.05 s" in r.json()["error"]
        assert httpx.get(f"{srv.url}/healthz").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_finishes_requests_in_flight(model: Path, sig: int) -> None:
    slow = encoded(picture(900, 900, seed=4))
    with running(model, "--tta", "--scales", "1,2", "--max-batch", "1", "--max-queue", "8") as srv:
        answers: list[httpx.Response] = []

        def post() -> None:
            answers.append(httpx.post(f"{srv.url}/v1/explain", content=slow, timeout=120))

        threads = [threading.Thread(target=post) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # all three received (in flight)
            text = httpx.get(f"{srv.url}/metrics").text
            if "cam_rt_requests_in_flight 4.0" in text:  # three posts and this scrape
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the requests never were in flight together")
        code = srv.stop(sig)
        for t in threads:
            t.join(60)
        assert code == 0, srv.lines
        assert [r.status_code for r in answers] == [200, 200, 200]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{srv.url}/healthz", timeout=5)
    assert srv.lines[-1] == "cam-rt: stopped: 3 requests answered" or "stopped" in srv.lines[-1], (
        srv.lines
    )
    assert not any("Traceback" in line for line in srv.lines), srv.lines


def test_without_the_extra_the_command_says_what_to_install(model: Path, tmp_path: Path) -> None:
    """uvicorn hidden from the process: one line naming the extra, exit code 1."""
    import subprocess
    import sys

    (tmp_path / "uvicorn").mkdir()
    (tmp_path / "uvicorn" / "__init__.py").write_text(
        "raise ImportError('hidden', name='uvicorn')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli", "serve", str(model), "--port", "0"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "cam-rt: error: cam-rt serve needs the 'uvicorn' package, which is not installed: pip install 'cam-rt[serve]'"
    ]
