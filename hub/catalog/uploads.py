"""A catalog CSV uploaded from the console, imported as a job whose progress the page polls.

POST /api/catalog/imports takes the file itself as the body (text/csv, up to MAX_UPLOAD_BYTES, far past
the door's 64 KiB: the door lets this one path through with its own bound, see
novapos.adapters.http.with_api_errors), streamed to a temporary file as it arrives, never held whole in
the request. It answers 202 at once with the job's id; the import (hub.catalog.importer) runs after the
answer, and GET /api/catalog/imports/{id} says how far it is: rows read of the file's rows, the step, and
at the end the catalog version made and the rows refused (line, column, reason).

Jobs live in the hub process that took the upload (the newest MAX_JOBS of them): a hub restarted during an
import loses its progress, and the import itself, which commits whole or not at all.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.catalog import service
from hub.catalog.importer import Malformed, import_catalog
from hub.console.context import Console
from hub.identity.access import authorize
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.roles import Permission
from novapos.validators import describe

log = logging.getLogger(__name__)

UPLOAD_PATH = "/api/catalog/imports"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_JOBS = 50
ERRORS_SHOWN = 100
MAX_NAME = 200
MAX_RUNNING = 1
"""Imports queued or running at once in one hub process: each holds its file in memory (up to 50 MiB) and
much of a core, and imports of one tenant queue on its catalog version anyway (two at once were measured
to stall the hub's other requests for over 10 s)."""
_READ = re.compile(r"read (\d+) rows")


@dataclass
class Job:
    """One upload's import, as GET .../imports/{id} shows it."""
    id: int
    tenant: str
    actor: str
    size_bytes: int
    rows_total: int
    file_name: str | None
    state: str = "queued"
    """queued, importing, done, failed."""
    rows_done: int = 0
    step: str = "waiting to start"
    result: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "rows_done": self.rows_done, "rows_total": self.rows_total,
                "size_bytes": self.size_bytes, "name": self.file_name, "step": self.step, **self.result}

    def progress(self, message: str) -> None:
        """The importer's progress sentence (called on the asyncio side: plain attribute writes)."""
        self.step = message
        if (read := _READ.match(message)) is not None:
            self.rows_done = min(int(read.group(1)), self.rows_total)


def _rows_in(data: bytes) -> int:
    """Data rows the file holds, counted by line ends before the import reads it (a quoted field holding a
    line end makes this a little high; progress never passes it)."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return max(lines - 1, 0)


OPENAPI: dict[str, Any] = {"paths": {
    UPLOAD_PATH: {"post": {
        "summary": "Upload a catalog CSV (the format of `novapos hub catalog import --help`) and import it as a job; "
                   "poll GET /api/catalog/imports/{id} for its progress",
        "parameters": [{"name": "name", "in": "query", "required": False, "description": "the file's name, for the "
                        "audit record", "schema": {"type": "string", "minLength": 1, "maxLength": MAX_NAME}}],
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {
            "type": "string", "minLength": 1, "maxLength": MAX_UPLOAD_BYTES,
            "description": f"the file, at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB"}}}},
        "responses": {
            "202": {"description": "taken: the job, queued", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/ImportJob"}}}},
            "401": {"description": "not signed in", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}},
            "403": {"description": "no catalog.edit over the whole tenant, or no CSRF token", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "429": {"description": "an import is already running at this hub", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "413": {"description": f"larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "415": {"description": "not sent as text/csv", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}},
            "422": {"description": "an empty file, or a name that is not plain text", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}}}}},
    UPLOAD_PATH + "/{id}": {"get": {
        "summary": "An upload's import: rows read of the file's rows, the step it is at, and once done the catalog "
                   f"version it made and the first {ERRORS_SHOWN} rows refused",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
        "responses": {
            "200": {"description": "the job", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/ImportJob"}}}},
            "401": {"description": "not signed in", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}},
            "403": {"description": "no catalog.edit over the whole tenant", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}},
            "404": {"$ref": "#/components/responses/NotFound"}}}},
}, "schemas": {
    "ImportJob": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": 1},
        "state": {"enum": ["queued", "importing", "done", "failed"]},
        "rows_done": {"type": "integer", "minimum": 0}, "rows_total": {"type": "integer", "minimum": 0},
        "size_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_UPLOAD_BYTES},
        "name": {"type": ["string", "null"], "maxLength": MAX_NAME},
        "step": {"type": "string", "description": "what the import is doing, or why it failed"},
        "version": {"type": "integer", "description": "done: the catalog version it made"},
        "landed": {"type": "integer"}, "changed_variants": {"type": "integer"},
        "refused": {"type": "integer", "description": "done: rows refused (the others landed)"},
        "errors": {"type": "array", "maxItems": ERRORS_SHOWN, "items": {"type": "object", "properties": {
            "line": {"type": "integer"}, "column": {"type": "string"}, "reason": {"type": "string"}}}}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    jobs: OrderedDict[int, Job] = OrderedDict()
    ids = itertools.count(1)

    async def run(job: Job, data: bytes) -> None:
        job.state, job.step = "importing", "reading the rows"
        try:
            imported = await console.seam.run(functools.partial(
                import_catalog, console.ready_pool(), job.tenant, data, job.progress, actor=job.actor,
                file_name=job.file_name))
        except (Malformed, service.NotFound) as exc:
            job.state, job.step = "failed", f"refused whole, nothing changed: {exc}"
            return
        except Exception as exc:
            log.warning("catalog import %d for %s failed (%s: %s); nothing changed. Check PostgreSQL and the hub's "
                        "log, then upload the file again", job.id, job.tenant, type(exc).__name__, exc)
            job.state, job.step = "failed", (f"the import failed ({type(exc).__name__}), nothing changed: "
                                             "upload the file again; if it keeps failing, see the hub's log")
            return
        job.state, job.rows_done = "done", job.rows_total
        job.result = {"version": imported.version, "landed": imported.landed,
                      "changed_variants": imported.changed_variants, "refused": len(imported.errors),
                      "errors": [{"line": e.line, "column": e.column, "reason": e.reason}
                                 for e in imported.errors[:ERRORS_SHOWN]]}
        log.info("catalog import %d for %s by %s: version %d, %d rows landed, %d refused", job.id, job.tenant,
                 job.actor, imported.version, imported.landed, len(imported.errors))

    async def upload(request: Request) -> Response:
        principal = await authorize(console, request, Permission.EDIT_CATALOG, tenant_wide=True)
        if sum(job.state in ("queued", "importing") for job in jobs.values()) >= MAX_RUNNING:
            raise ApiError(429, "a catalog import is running at this hub: upload the file again once it is done")
        name = request.query_params.get("name")
        file_name = None if name is None else validators.text("name", name, max_length=MAX_NAME)
        with tempfile.TemporaryFile(prefix="novapos-upload-") as raw:
            spool = trio.wrap_file(raw)
            size = 0
            try:
                async for chunk in request.stream():
                    size += len(chunk)
                    await spool.write(chunk)
            except ClientDisconnect:
                raise ApiError(400, "the upload was cut off before its end: upload the file again") from None
            if size == 0:
                raise ApiError(422, "the file is empty: upload a catalog CSV whose first line names the columns")
            await spool.seek(0)
            data = await spool.read()
        job = Job(next(ids), principal.tenant, principal.login, size, _rows_in(data), file_name)
        jobs[job.id] = job
        while len(jobs) > MAX_JOBS:
            jobs.popitem(last=False)
        # Not a background task of this request: that would hold the HTTP connection until the import ends, and
        # the page's polls on it would wait behind it. A system task ends with the hub (the import commits whole
        # or not at all), and `run` turns every failure into the job's state.
        trio.lowlevel.spawn_system_task(run, job, data, name=f"catalog import {job.id}")
        return JSONResponse(job.as_json(), status_code=202)

    async def progress(request: Request) -> Response:
        principal = await authorize(console, request, Permission.EDIT_CATALOG, tenant_wide=True)
        raw = request.path_params["id"]
        job = jobs.get(int(raw)) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None
        if job is None or job.tenant != principal.tenant:
            raise ApiError(404, f"there is no import {describe(raw)} at this hub (the hub keeps its newest "
                                f"{MAX_JOBS} and forgets them when it restarts)")
        return JSONResponse(job.as_json())

    return [route(UPLOAD_PATH, body_type="text/csv", POST=upload), route(UPLOAD_PATH + "/{id}", GET=progress)]
