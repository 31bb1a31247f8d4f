"""Bearer tokens, loopback-only without one, and the ``serve`` command's refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencmr.cli import app as cli_app
from opencmr.service import ServiceConfig, ServiceConfigError, is_loopback
from tests.service.conftest import Server, request, service_config, upload

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(service_config(tmp_path_factory.mktemp("guarded"), token=TOKEN))
    yield running
    running.stop()


def test_token_required_when_configured(guarded: Server) -> None:
    assert request(f"{guarded.url}/studies").status == 401
    wrong = request(f"{guarded.url}/studies", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert request(f"{guarded.url}/studies", headers={"Authorization": f"Basic {TOKEN}"}).status == 401
    assert upload(guarded.url, "x.zip", b"PK").status == 401
    assert request(f"{guarded.url}/studies/{'0' * 32}/files/qc.json").status == 401


def test_token_accepted(guarded: Server) -> None:
    reply = request(f"{guarded.url}/studies", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200 and reply.json() == []
    assert request(f"{guarded.url}/health").status == 200  # liveness stays open


def test_non_loopback_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(ServiceConfigError, match="without a token"):
        ServiceConfig(data_dir=tmp_path, host="0.0.0.0")
    assert ServiceConfig(data_dir=tmp_path, host="0.0.0.0", token="t").token == "t"
    assert "t" not in repr(ServiceConfig(data_dir=tmp_path, host="0.0.0.0", token="t")).split("token=")[1][:4]
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "0.0.0.0", "10.0.0.5", "example.org")] \
        == [True, True, True, True, False, False, False]


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "without a token" in result.output


def test_serve_token_file_errors(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    result = CliRunner().invoke(cli_app, ["serve", "--token-file", str(empty), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "token file is empty" in result.output
    result = CliRunner().invoke(cli_app, ["serve", "--token", "a", "--token-file", str(empty)])
    assert result.exit_code == 1 and "not both" in result.output
