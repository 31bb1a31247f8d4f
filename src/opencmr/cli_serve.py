"""``opencmr serve``: the REST service and web viewer (registered by :mod:`opencmr.cli`).

A thin layer over :func:`opencmr.service.create_app` run by uvicorn. Like
:mod:`opencmr.cli_batch`, this module never imports :mod:`opencmr.cli` at
import time; the error handling is looked up when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opencmr.cli_errors import cli_errors

__all__ = ["serve"]

@cli_errors
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback requires a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Uploads, results and job records (kept across restarts).")
    ] = Path("opencmr-serve-data"),
    token: Annotated[
        str | None,
        typer.Option("--token", help="Bearer token clients must send (prefer --token-file: a command line is visible "
                     "to other users of the machine)."),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File holding the bearer token.", show_default=False)
    ] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload in MiB.")] = 1024.0,
    max_image_mb: Annotated[
        float, typer.Option("--max-image-mb", min=0.001, help="Largest NIfTI image (voxel data, from its header) in MiB.")
    ] = 2048.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Analyses that run at once (processes).")] = 1,
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Test-time augmentation (slower, steadier).")] = True,
) -> None:
    """Serve the REST API (/docs) and the web viewer (/) for uploading studies and browsing results."""
    import uvicorn

    from opencmr.service import ServiceConfig, create_app
    from opencmr.service.config import ServiceConfigError, read_token_file

    if token is not None and token_file is not None:
        raise ServiceConfigError("give --token or --token-file, not both")
    if token_file is not None:
        token = read_token_file(token_file)
    config = ServiceConfig(
        data_dir=data_dir, host=host, port=port, token=token, max_upload_mb=max_upload_mb, workers=workers, tta=tta,
        max_image_mb=max_image_mb,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    display = f"[{host}]" if ":" in host else host
    typer.echo(f"opencmr service on http://{display}:{port}/ (API docs at /docs), data in {data_dir}", err=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
