"""The REST API and the web viewer: :func:`create_app` builds the FastAPI application.

Endpoints (all documented in ``/openapi.json`` and ``/docs``)::

    GET    /health                                   liveness, queue length (no token needed)
    POST   /studies                                  upload a study -> 202 {id}; 413, 415, 400, 503
    GET    /studies                                  every job, newest first
    GET    /studies/{id}                             status; results when done
    DELETE /studies/{id}                             remove a job and its files (409 while running)
    GET    /studies/{id}/files/{name}                a result file (whitelisted names)
    GET    /studies/{id}/viewer                      grid, frames and ED/ES for the viewer
    GET    /studies/{id}/slices/{frame}/{slice}.png  a slice (``?overlay=1``: with the labels blended in)
    GET    /studies/{id}/overlays/{frame}/{slice}.png  the labels as a transparent RGBA PNG
    GET    /                                         the web viewer (static files under /static)

With a token configured every ``/studies`` request needs ``Authorization:
Bearer TOKEN`` (401 otherwise). The log names jobs by their random id, with
sizes and durations; it never shows file names from inside an upload, DICOM
attributes or form fields.
"""


import hmac
import importlib.resources
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from opencmr import __version__
from opencmr.service.config import ServiceConfig
from opencmr.service.jobs import (
    RESULTS_DIR,
    UPLOAD_DIR,
    VIEWER_NPZ,
    JobManager,
    JobRecord,
    JobStatus,
    JobStore,
    QueueFull,
    new_job_id,
    utc_now,
)
from opencmr.service.slices import (
    OVERLAY_COLOURS,
    load_viewer_data,
    render_blended_png,
    render_image_png,
    render_overlay_png,
)
from opencmr.service.uploads import UploadLimits, UploadRejected, prepare_upload

__all__ = ["RESULT_FILES", "create_app"]

log = logging.getLogger("opencmr.service")

#: Result files that ``GET /studies/{id}/files/{name}`` serves, with their media types.
RESULT_FILES: dict[str, str] = {
    "segmentation.nii.gz": "application/gzip",
    "segmentation.dcm": "application/dicom",
    "report_sr.dcm": "application/dicom",
    "measurements.json": "application/json",
    "measurements.csv": "text/csv",
    "diagnosis.json": "application/json",
    "qc.json": "application/json",
    "uncertainty.nii.gz": "application/gzip",
    "volume_curve.png": "image/png",
    "bullseye_wall_thickness.png": "image/png",
    "bullseye_thickening.png": "image/png",
    "report.html": "text/html; charset=utf-8",
}
_FRAME_SEGMENTATION = re.compile(r"^segmentation_frame\d{2,3}\.nii\.gz$")
_MULTIPART_OVERHEAD = 64 * 1024
_JOB_ID = PathParam(description="Job id (32 hex digits)", pattern="^[0-9a-f]{32}$")


class ErrorBody(BaseModel):
    """An error: what went wrong, in one sentence."""

    detail: str


class Health(BaseModel):
    """The service is up."""

    status: str = Field("ok", examples=["ok"])
    version: str
    jobs_waiting: int = Field(description="Jobs queued or running")
    max_jobs_waiting: int
    workers: int


class JobSummary(BaseModel):
    """A job as listed: no file names, no patient identifiers."""

    id: str = Field(description="Random job id (32 hex digits)")
    status: JobStatus = Field(description="queued, running, done or failed")
    created: str = Field(description="Upload time, ISO 8601 UTC")
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = Field(None, description="Analysis time in seconds")
    input_format: str = Field(description="'dicom' or 'nifti'")
    upload_bytes: int
    qc_verdict: str | None = Field(None, description="pass, review or fail (when done)")
    diagnosis_group: str | None = Field(
        None, description="NOR, DCM, HCM, MINF or RV; null when the classifier declined (see diagnosis.reason)"
    )
    error: str | None = Field(None, description="Why the job failed")


class JobResults(BaseModel):
    """Contents of the result documents (null where the analysis wrote none, e.g. nothing measurable)."""

    measurements: dict[str, Any] | None = Field(None, description="measurements.json (opencmr.measurements/1)")
    diagnosis: dict[str, Any] | None = Field(None, description="diagnosis.json (opencmr.diagnosis/1)")
    qc: dict[str, Any] | None = Field(None, description="qc.json (opencmr.qc/1)")


class JobDetail(JobSummary):
    """A job with, once done, its results and the names of its result files."""

    files: list[str] = Field(default_factory=list, description="Names for GET /studies/{id}/files/{name}")
    results: JobResults | None = None


class JobAccepted(BaseModel):
    """An upload was accepted and queued."""

    id: str
    status: JobStatus
    url: str = Field(description="Where to poll the job")


class ViewerInfo(BaseModel):
    """What the viewer needs to lay out its sliders (indices are 0-based positions in the arrays)."""

    n_frames: int
    n_slices: int
    rows: int
    cols: int
    pixel_spacing_mm: list[float] = Field(description="(row, column) spacing in mm")
    frame_numbers: list[int] = Field(description="Acquisition frame number of each frame index")
    labelled_frames: list[int] = Field(description="Frame indices that have labels")
    ed_index: int | None
    es_index: int | None
    overlay_colours: dict[str, list[int]] = Field(description="RGBA of lv, myo and rv in the overlays")


class _TooLarge(Exception):
    pass


_ERRORS = {
    400: {"model": ErrorBody, "description": "Not a usable upload (unsafe zip paths, links, mixed formats, ...)"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "No such job, or not available yet"},
}


def _float_field(form: Any, name: str, low: float, high: float) -> float | None:
    value = form.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UploadRejected(400, f"{name} must be a number") from None
    if not low <= number <= high:
        raise UploadRejected(400, f"{name} must be between {low:g} and {high:g}")
    return number


def _analysis_fields(form: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "height_cm": _float_field(form, "height_cm", 30, 260),
        "weight_kg": _float_field(form, "weight_kg", 1, 400),
        "heart_rate_bpm": _float_field(form, "hr_bpm", 15, 300),
    }
    sex = form.get("sex")
    if isinstance(sex, str) and sex.strip():
        sex = sex.strip().upper()
        if sex not in ("M", "F"):
            raise UploadRejected(400, "sex must be M or F")
        options["sex"] = sex
    return {k: v for k, v in options.items() if v is not None}


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def create_app(config: ServiceConfig) -> FastAPI:
    """The FastAPI application of the service (the job pool starts with the app's lifespan).

    Parameters
    ----------
    config : ServiceConfig
        Checked configuration (a token is already required off loopback).
    """
    store = JobStore(config.data_dir)
    manager = JobManager(
        store,
        workers=config.workers,
        max_waiting=config.max_jobs_waiting,
        torch_threads=config.threads_per_job,
        analysis_options={"tta": config.tta, "orientation": config.orientation},
    )
    limits = UploadLimits(
        max_files=config.max_files,
        max_uncompressed_bytes=int(config.max_uncompressed_mb * 1024 * 1024),
        max_compression_ratio=config.max_compression_ratio,
        max_image_bytes=int(config.max_image_mb * 1024 * 1024),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        resumed = manager.resume()
        log.info("service started: %d worker(s), %d job(s) resumed", config.workers, resumed)
        try:
            yield
        finally:
            manager.shutdown()

    app = FastAPI(
        title="opencmr",
        version=__version__,
        description=(
            "Cardiac MRI analysis as a service: upload a short-axis cine (a zip of a DICOM series or of NIfTI "
            "files, or one .nii/.nii.gz), poll the job, read the measurements, QC verdict and diagnosis, fetch the "
            "result files. Research software, not a medical device."
        ),
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.manager = manager
    bearer = HTTPBearer(auto_error=False, description="Required when the service was started with a token")
    expected = None if config.token is None else config.token.encode("utf-8")

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if expected is None:
            return
        given = b"" if credentials is None else credentials.credentials.encode("utf-8")
        if credentials is None or not hmac.compare_digest(given, expected):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(UploadRejected)
    async def _rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def record_or_404(job_id: str) -> JobRecord:
        try:
            return store.get(job_id)
        except KeyError:
            raise HTTPException(404, "no such job") from None

    def summary(record: JobRecord) -> JobSummary:
        doc = record.to_json()
        return JobSummary(**{k: v for k, v in doc.items() if k in JobSummary.model_fields})

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness and queue length")
    def health() -> Health:
        return Health(
            version=__version__,
            jobs_waiting=manager.waiting,
            max_jobs_waiting=config.max_jobs_waiting,
            workers=config.workers,
        )

    upload_schema = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "A .zip of one DICOM series (files with the DICM preamble) or of "
                                "NIfTI files (one 4D cine, or an ACDC patient folder with Info.cfg), or one "
                                ".nii/.nii.gz",
                            },
                            "height_cm": {"type": "number", "minimum": 30, "maximum": 260},
                            "weight_kg": {"type": "number", "minimum": 1, "maximum": 400},
                            "sex": {"type": "string", "enum": ["M", "F"]},
                            "hr_bpm": {"type": "number", "minimum": 15, "maximum": 300},
                        },
                    }
                }
            },
        }
    }

    @app.post(
        "/studies",
        status_code=202,
        response_model=JobAccepted,
        tags=["studies"],
        summary="Upload a study for analysis",
        dependencies=[Depends(authorised)],
        openapi_extra=upload_schema,
        responses={
            **_ERRORS,
            413: {"model": ErrorBody, "description": f"Upload larger than {config.max_upload_mb:g} MiB, or a zip "
                  "that inflates beyond the limits (too many files, too large, too compressed)"},
            415: {"model": ErrorBody, "description": "Not a zip/.nii/.nii.gz, or files that are not DICOM or NIfTI"},
            503: {"model": ErrorBody, "description": f"{config.max_jobs_waiting} jobs are already queued or running; "
                  "retry after the Retry-After seconds"},
        },
    )
    async def upload(request: Request) -> JSONResponse:
        from starlette.formparsers import MultiPartException, MultiPartParser

        if manager.waiting >= config.max_jobs_waiting:
            raise HTTPException(503, "the queue is full; retry later", headers={"Retry-After": "30"})
        limit = config.max_upload_bytes + _MULTIPART_OVERHEAD
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise UploadRejected(413, f"upload larger than {config.max_upload_mb:g} MiB")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise UploadRejected(415, "send the study as multipart/form-data with a 'file' field")

        async def counted() -> AsyncIterator[bytes]:
            total = 0
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise _TooLarge
                yield chunk

        started = time.monotonic()
        try:
            form = await MultiPartParser(request.headers, counted(), max_files=1, max_fields=8).parse()
        except _TooLarge:
            raise UploadRejected(413, f"upload larger than {config.max_upload_mb:g} MiB") from None
        except MultiPartException as exc:
            raise UploadRejected(400, f"malformed form data: {exc.message}") from None
        try:
            file = form.get("file")
            if file is None or isinstance(file, str):
                raise UploadRejected(400, "the form has no 'file' field holding a file")
            options = _analysis_fields(form)
            job_id = new_job_id()
            folder = store.folder(job_id)
            folder.mkdir(parents=True)
            received = folder / "received.part"
            try:
                size = await anyio.to_thread.run_sync(_save, file.file, received)
                study_path, kind = await anyio.to_thread.run_sync(
                    prepare_upload, received, file.filename or "", folder / UPLOAD_DIR, limits
                )
                record = JobRecord(
                    id=job_id,
                    status=JobStatus.QUEUED,
                    created=utc_now(),
                    input_format=kind,
                    upload_bytes=size,
                    study_path=study_path.relative_to(folder).as_posix(),
                    options=options,
                )
                store.save(record)
                manager.submit(record)
            except QueueFull:
                shutil.rmtree(folder, ignore_errors=True)
                raise HTTPException(503, "the queue is full; retry later", headers={"Retry-After": "30"}) from None
            except BaseException as exc:
                shutil.rmtree(folder, ignore_errors=True)
                if isinstance(exc, UploadRejected):
                    log.info("upload rejected (%d)", exc.status)
                raise
        finally:
            await form.close()
        log.info("job %s accepted: %d bytes in %.2f s", job_id, size, time.monotonic() - started)
        return JSONResponse(
            JobAccepted(id=job_id, status=JobStatus.QUEUED, url=f"/studies/{job_id}").model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/studies/{job_id}"},
        )

    @app.get(
        "/studies", response_model=list[JobSummary], tags=["studies"], summary="List jobs, newest first",
        dependencies=[Depends(authorised)], responses={401: _ERRORS[401]},
    )
    def list_jobs() -> list[JobSummary]:
        return [summary(r) for r in store.list()]

    @app.get(
        "/studies/{job_id}", response_model=JobDetail, tags=["studies"], summary="A job's status and results",
        dependencies=[Depends(authorised)], responses={401: _ERRORS[401], 404: _ERRORS[404]},
    )
    def get_job(job_id: Annotated[str, _JOB_ID]) -> JobDetail:
        record = record_or_404(job_id)
        detail = JobDetail(**summary(record).model_dump())
        if record.status is JobStatus.DONE:
            results = store.folder(job_id) / RESULTS_DIR
            detail.files = sorted(
                p.name for p in results.iterdir() if p.name in RESULT_FILES or _FRAME_SEGMENTATION.match(p.name)
            ) if results.is_dir() else []
            detail.results = JobResults(
                measurements=_read_json(results / "measurements.json"),
                diagnosis=_read_json(results / "diagnosis.json"),
                qc=_read_json(results / "qc.json"),
            )
        return detail

    @app.delete(
        "/studies/{job_id}", status_code=204, tags=["studies"], summary="Delete a job and all its files",
        dependencies=[Depends(authorised)],
        responses={401: _ERRORS[401], 404: _ERRORS[404],
                   409: {"model": ErrorBody, "description": "The job is running; delete it once it has finished"}},
    )
    def delete_job(job_id: Annotated[str, _JOB_ID]) -> Response:
        record_or_404(job_id)
        if manager.is_active(job_id) and not manager.cancel(job_id):
            raise HTTPException(409, "the job is running; delete it once it has finished")
        store.delete(job_id)
        log.info("job %s deleted", job_id)
        return Response(status_code=204)

    @app.get(
        "/studies/{job_id}/files/{name}", tags=["results"], summary="A result file",
        dependencies=[Depends(authorised)], response_class=FileResponse,
        responses={401: _ERRORS[401], 404: _ERRORS[404], 200: {"description": "The file (" + ", ".join(RESULT_FILES)
                   + ", segmentation_frameFF.nii.gz)"}},
    )
    def result_file(job_id: Annotated[str, _JOB_ID], name: str) -> FileResponse:
        record_or_404(job_id)
        if name in RESULT_FILES:
            media = RESULT_FILES[name]
        elif _FRAME_SEGMENTATION.match(name):
            media = "application/gzip"
        else:
            raise HTTPException(404, f"not a result file name; one of {', '.join(RESULT_FILES)}")
        path = store.folder(job_id) / RESULTS_DIR / name
        if not path.is_file():
            raise HTTPException(404, f"{name} was not written for this job")
        inline = media.startswith(("image/", "text/html", "application/json"))
        return FileResponse(path, media_type=media, filename=None if inline else name)

    def viewer_data(job_id: str) -> Any:
        record_or_404(job_id)
        try:
            return load_viewer_data(store.folder(job_id) / VIEWER_NPZ)
        except FileNotFoundError:
            raise HTTPException(404, "the job has not finished") from None

    def checked(data: Any, frame: int, slice_: int) -> None:
        frames, slices = data.shape[:2]
        if not (0 <= frame < frames and 0 <= slice_ < slices):
            raise HTTPException(404, f"frame must be 0-{frames - 1} and slice 0-{slices - 1}")

    png = {200: {"content": {"image/png": {}}, "description": "PNG"}, 401: _ERRORS[401], 404: _ERRORS[404]}

    @app.get(
        "/studies/{job_id}/viewer", response_model=ViewerInfo, tags=["viewer"], summary="Grid of a finished job",
        dependencies=[Depends(authorised)], responses={401: _ERRORS[401], 404: _ERRORS[404]},
    )
    def viewer_info(job_id: Annotated[str, _JOB_ID]) -> ViewerInfo:
        return ViewerInfo(**viewer_data(job_id).describe())

    @app.get(
        "/studies/{job_id}/slices/{frame}/{slice_index}.png", tags=["viewer"], response_class=Response,
        summary="One slice as a grey PNG (overlay=1: with the labels blended in)",
        dependencies=[Depends(authorised)], responses=png,
    )
    def slice_png(
        job_id: Annotated[str, _JOB_ID],
        frame: int,
        slice_index: int,
        overlay: Annotated[bool, Query(description="Blend the labels in")] = False,
    ) -> Response:
        data = viewer_data(job_id)
        checked(data, frame, slice_index)
        if not overlay:
            body = render_image_png(data, frame, slice_index)
        else:
            body = render_blended_png(data, frame, slice_index)
        return Response(body, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get(
        "/studies/{job_id}/overlays/{frame}/{slice_index}.png", tags=["viewer"], response_class=Response,
        summary="The labels of one slice as a transparent RGBA PNG", dependencies=[Depends(authorised)],
        responses=png,
    )
    def overlay_png(
        job_id: Annotated[str, _JOB_ID],
        frame: int,
        slice_index: int,
        labels: Annotated[str, Query(description="Comma-separated: lv, myo, rv", pattern="^[a-z,]*$")] = "lv,myo,rv",
    ) -> Response:
        show = tuple(name for name in labels.split(",") if name)
        unknown = [name for name in show if name not in OVERLAY_COLOURS]
        if unknown:
            raise HTTPException(422, f"unknown labels {unknown}; use lv, myo, rv")
        data = viewer_data(job_id)
        checked(data, frame, slice_index)
        body = render_overlay_png(data, frame, slice_index, show)
        return Response(body, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    static = importlib.resources.files("opencmr.service") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            str(static / "index.html"),
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                "Cache-Control": "no-cache",
            },
        )

    return app


def _save(source: Any, target: Path) -> int:
    source.seek(0)
    with target.open("xb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    return target.stat().st_size

