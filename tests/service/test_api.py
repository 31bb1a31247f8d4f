"""The REST API against a real uvicorn server: an upload analysed end to end, rejected uploads, listing, deleting."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

import pytest

from tests.service.conftest import Server, request, service_config, upload, wait_done, zip_bytes


@pytest.fixture(scope="module")
def finished(server: Server, phantom_zip: bytes) -> dict:
    reply = upload(server.url, "phantom.zip", phantom_zip)
    assert reply.status == 202, reply.body
    job_id = reply.json()["id"]
    assert reply.headers["location"] == f"/studies/{job_id}"
    return wait_done(server.url, job_id)


def test_health_and_openapi(server: Server) -> None:
    health = request(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["workers"] == 1
    schema = request(f"{server.url}/openapi.json").json()
    post = schema["paths"]["/studies"]["post"]
    assert {"202", "400", "413", "415", "503"} <= set(post["responses"])
    assert "file" in post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert "JobDetail" in schema["components"]["schemas"]


def test_uploaded_zip_is_analysed(server: Server, finished: dict) -> None:
    assert finished["status"] == "done", finished.get("error")
    assert finished["qc_verdict"] in ("pass", "review", "fail") and finished["duration_s"] > 0
    measurements = finished["results"]["measurements"]
    assert 20 < measurements["lv_ef_percent"] < 90
    assert finished["results"]["qc"]["verdict"] == finished["qc_verdict"]
    assert {"measurements.json", "qc.json", "diagnosis.json", "segmentation.nii.gz"} <= set(finished["files"])
    served = request(f"{server.url}/studies/{finished['id']}/files/measurements.json")
    assert served.status == 200 and served.json() == measurements
    seg = request(f"{server.url}/studies/{finished['id']}/files/segmentation.nii.gz")
    assert seg.status == 200 and seg.body[:2] == b"\x1f\x8b"


def test_viewer_endpoints_render_pngs(server: Server, finished: dict) -> None:
    base = f"{server.url}/studies/{finished['id']}"
    info = request(f"{base}/viewer").json()
    assert (info["n_frames"], info["n_slices"], info["rows"], info["cols"]) == (3, 4, 128, 128)
    for path in ("/slices/0/1.png", "/slices/0/1.png?overlay=1", "/overlays/0/1.png?labels=lv,myo"):
        reply = request(base + path)
        assert reply.status == 200 and reply.body[:8] == b"\x89PNG\r\n\x1a\n", path
    assert request(f"{base}/slices/0/9.png").status == 404
    assert request(f"{base}/overlays/0/1.png?labels=lv,bone").status == 422


def test_result_files_are_whitelisted(server: Server, finished: dict) -> None:
    base = f"{server.url}/studies/{finished['id']}/files"
    assert request(f"{base}/job.json").status == 404
    assert request(f"{base}/..%2Fjob.json").status == 404
    assert request(f"{server.url}/studies/{'0' * 32}").status == 404
    assert request(f"{server.url}/studies/not-an-id").status == 422


def test_listing_has_no_file_names(server: Server, finished: dict) -> None:
    jobs = request(f"{server.url}/studies").json()
    mine = next(j for j in jobs if j["id"] == finished["id"])
    assert mine["status"] == "done" and mine["qc_verdict"] == finished["qc_verdict"]
    assert "phantom" not in json.dumps(jobs) and "study_path" not in mine


def test_single_nifti_with_form_fields_then_delete(server: Server, phantom_folder: Path) -> None:
    content = (phantom_folder / "phantom_4d.nii.gz").read_bytes()
    reply = upload(server.url, "cine.nii.gz", content, {"height_cm": "172", "weight_kg": "70", "sex": "F"})
    assert reply.status == 202, reply.body
    job_id = reply.json()["id"]
    doc = wait_done(server.url, job_id)
    assert doc["status"] == "done", doc.get("error")
    m = doc["results"]["measurements"]
    assert (m["height_cm"], m["weight_kg"], m["sex"]) == (172, 70, "F") and m["bsa_m2"] > 1
    assert doc["diagnosis_group"] in ("NOR", "DCM", "HCM", "MINF", "RV", None)
    assert request(f"{server.url}/studies/{job_id}", "DELETE").status == 204
    assert request(f"{server.url}/studies/{job_id}").status == 404
    assert not (server.config.data_dir / "jobs" / job_id).exists()
    assert job_id not in {j["id"] for j in request(f"{server.url}/studies").json()}


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"height_cm": "tall"}, "height_cm must be a number"), ({"sex": "X"}, "sex must be M or F")],
)
def test_bad_form_fields(server: Server, phantom_zip: bytes, fields: dict, message: str) -> None:
    reply = upload(server.url, "phantom.zip", phantom_zip, fields)
    assert reply.status == 400 and message in reply.json()["detail"]


@pytest.mark.parametrize(
    ("name", "content", "status", "message"),
    [
        ("evil.zip", {"../evil.nii.gz": b"x"}, 400, "leaves its folder"),
        ("abs.zip", {"/tmp/evil.nii.gz": b"x"}, 400, "absolute path"),
        ("notes.zip", {"study/notes.txt": b"patient notes"}, 415, "neither DICOM nor NIfTI"),
        ("bomb.zip", {"zeros.nii": bytes(64 << 20)}, 413, "zip bomb"),
        ("clash.zip", {"a": b"x", "a/b.nii": b"y"}, 400, "cannot be unpacked"),
    ],
)
def test_unsafe_or_foreign_zips_are_refused(
    server: Server, name: str, content: dict, status: int, message: str
) -> None:
    body = zip_bytes(content)
    assert len(body) < 1 << 20  # the bomb is small on the wire
    reply = upload(server.url, name, body)
    assert reply.status == status and message in reply.json()["detail"], reply.body
    assert not (server.config.data_dir / "evil.nii.gz").exists() and not Path("/tmp/evil.nii.gz").exists()
    # nothing is left behind for a refused upload
    assert all((p / "job.json").exists() for p in (server.config.data_dir / "jobs").iterdir())


def test_other_file_types_are_refused(server: Server) -> None:
    reply = upload(server.url, "scan.txt", b"hello")
    assert reply.status == 415 and ".zip" in reply.json()["detail"]
    reply = upload(server.url, "scan.nii.gz", b"\x1f\x8b not really")
    assert reply.status == 415 and "NIfTI header" in reply.json()["detail"]
    reply = request(f"{server.url}/studies", "POST", b"{}", {"Content-Type": "application/json"})
    assert reply.status == 415


def test_oversize_upload_is_refused_by_its_length(server: Server) -> None:
    """The declared Content-Length alone is refused: the answer comes before the body is sent.

    (Sending the whole body first races with the server closing the connection.)
    """
    conn = http.client.HTTPConnection("127.0.0.1", server.config.port, timeout=60)
    try:
        conn.putrequest("POST", "/studies")
        conn.putheader("Content-Type", "multipart/form-data; boundary=b0undary")
        conn.putheader("Content-Length", str(3 << 20))
        conn.endheaders(b"--b0undary\r\n")
        response = conn.getresponse()
        assert response.status == 413 and b"larger than 2 MiB" in response.read()
    finally:
        conn.close()


def test_oversize_chunked_upload_is_refused_while_streaming(server: Server) -> None:
    """No Content-Length: the service counts the bytes as they arrive and stops at the limit."""
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n\r\n').encode()
    chunks = [head] + [os.urandom(256 << 10) for _ in range(40)] + [f"\r\n--{boundary}--\r\n".encode()]
    conn = http.client.HTTPConnection("127.0.0.1", server.config.port, timeout=60)
    try:
        conn.request(
            "POST", "/studies", body=iter(chunks), encode_chunked=True,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"},
        )
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before all 10 MiB are sent
    response = conn.getresponse()
    assert response.status == 413 and b"larger than 2 MiB" in response.read()
    conn.close()


def test_restart_lists_finished_jobs(server: Server, finished: dict) -> None:
    again = Server(service_config(server.config.data_dir))
    try:
        jobs = {j["id"]: j for j in request(f"{again.url}/studies").json()}
        assert jobs[finished["id"]]["status"] == "done"
        doc = request(f"{again.url}/studies/{finished['id']}").json()
        assert doc["results"]["measurements"] == finished["results"]["measurements"]
    finally:
        again.stop()


def test_queue_limit_answers_503(tmp_path: Path, phantom_zip: bytes) -> None:
    limited = Server(service_config(tmp_path, max_jobs_waiting=1))
    try:
        first = upload(limited.url, "a.zip", phantom_zip)
        second = upload(limited.url, "b.zip", phantom_zip)
        assert first.status == 202
        assert second.status == 503 and second.headers["retry-after"] == "30"
        assert wait_done(limited.url, first.json()["id"])["status"] == "done"
        assert len(request(f"{limited.url}/studies").json()) == 1
    finally:
        limited.stop()
