"""The scoring server: a FastAPI app over one loaded run, and ``serve`` to run it with uvicorn.

``POST /predict`` takes one row (an object) or a list of rows and answers with
``Pipeline.predict``'s scores; ``GET /health``; ``GET /metadata`` (the run, its components
and their versions, its inputs and their types); ``/docs`` and ``/openapi.json``;
``POST /explain`` when the installed core has ``Pipeline.explain``. A bad request is a 422
that names the field, a body over the limit a 413, and no request stops the server.

The request body is validated by pydantic-core from its bytes against the ``Row``
TypedDict built at start-up (FastAPI's own body path is 3x slower); ``/openapi.json``
carries its schema all the same.
"""

import json
import logging
import math
import os
import re
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from transfuse.errors import ConfigError, DataError, TransfuseError
from transfuse_serve.rows import FileReader, RequestError, columns_of, row_model, to_frame

__all__ = ["ENV", "Scorer", "ServeSettings", "app_from_env", "create_app", "serve"]

#: Where ``serve --workers N`` passes the settings to each worker process.
ENV = "TRANSFUSE_SERVE_SETTINGS"
log = logging.getLogger("transfuse.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServeSettings:
    """What a server serves and its limits."""

    run: str
    root: str | None = None
    max_rows: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    device: str | None = None

    @classmethod
    def checked(
        cls,
        run: str | Path,
        root: str | Path | None = None,
        max_rows: int = 10_000,
        max_body_bytes: int = 32 * 1024 * 1024,
        device: str | None = None,
    ) -> "ServeSettings":
        """Settings whose paths exist and limits make sense (a TransfuseError otherwise)."""
        if max_rows < 1:
            raise ConfigError(
                f"{max_rows} rows per request", where="--max-rows", fix="give 1 or more"
            )
        if max_body_bytes < 1024:
            raise ConfigError(
                f"a body limit of {max_body_bytes} bytes",
                where="--max-body-mb",
                fix="give at least 0.001",
            )
        run_path = Path(run).expanduser()
        if not run_path.is_dir():
            raise DataError(
                "no such run directory",
                where=f"RUN {run_path}",
                fix="give a run written by `transfuse train`",
            )
        root_path = None
        if root is not None:
            root_path = Path(root).expanduser()
            if not root_path.is_dir():
                raise DataError(
                    "no such folder",
                    where=f"--root {root_path}",
                    fix="give the folder the requests' files lie in",
                )
            root_path = root_path.resolve()
        return cls(
            str(run_path.absolute()),
            str(root_path) if root_path else None,
            max_rows,
            max_body_bytes,
            device,
        )


class Scorer:
    """A loaded run, its request model and a lock: one prediction at a time per process."""

    def __init__(self, settings: ServeSettings) -> None:
        import transfuse

        self.settings = settings
        # No embedding cache: every request's rows are new applicants, so caching their
        # frozen embeddings on disk would only grow without bound and slow each request.
        self.pipeline = transfuse.load(settings.run, device=settings.device, cache=False)
        self.columns = columns_of(self.pipeline)
        self.Row = row_model(self.columns)
        root = Path(settings.root) if settings.root else None
        self.files = FileReader(root, settings.max_body_bytes)
        self.lock = threading.Lock()
        self.key = next((c for c in self.columns if c.modality == "key"), None)

    def frame(self, rows: list[Any], many: bool) -> Any:
        """The validated rows as the run's DataFrame."""
        return to_frame(rows, self.columns, self.files, many=many)

    def predict_json(self, rows: list[dict[str, Any]], many: bool) -> str:
        """The answer to ``/predict`` as JSON text: scores per row (the key column first
        when the run has one) and the encoders' notes. Written by pandas' JSON writer
        (15 significant digits), about 10x faster than building dicts."""
        frame = self.frame(rows, many)
        with self.lock:
            scores = self.pipeline.predict(frame)
            notes = dict(self.pipeline.predict_report)
        if self.key is not None and self.key.name not in scores.columns:
            scores.insert(0, self.key.name, frame[self.key.name].astype(object))
        records = scores.to_json(orient="records", double_precision=15)
        text = '{"predictions":' + records if many else '{"prediction":' + records[1:-1]
        if notes:
            text += ',"notes":' + json.dumps(notes, allow_nan=False, default=_plain)
        return text + "}"

    def explain(self, rows: list[Any], many: bool) -> list[dict[str, Any]]:
        """``Pipeline.explain`` per row, as JSON records."""
        frame = self.frame(rows, many)
        explain = getattr(self.pipeline, "explain", None)  # a core that has it
        assert explain is not None
        with self.lock:
            explained = explain(frame)
        records: list[dict[str, Any]] = json.loads(explained.to_json(orient="records"))
        for record in records:  # per-part attributions come as JSON text: send them as JSON
            parts = record.get("parts")
            if isinstance(parts, str) and parts.startswith(("{", "[")):
                record["parts"] = json.loads(parts)
        return records

    def metadata(self) -> dict[str, Any]:
        """The run, its components and versions, its inputs and their types, the limits."""
        from transfuse import __version__
        from transfuse.runs import component_origins

        config = self.pipeline.config
        trained = _read_json(Path(self.settings.run) / "environment.json")
        return {
            "run": Path(self.settings.run).name,
            "name": config.name,
            "task": {"type": config.task.type, "target": config.task.target},
            "score_columns": self.pipeline.score_columns(),
            "inputs": {
                name: {
                    "encoder": spec.encoder,
                    "columns": [c.describe() for c in self.columns if name in c.inputs],
                }
                for name, spec in config.inputs.items()
            },
            "key": self.key.name if self.key else None,
            "components": component_origins(config, self.pipeline.manager),
            "trained_with": {
                "transfuse": trained.get("transfuse"),
                "components": trained.get("components", {}),
            },
            "transfuse": __version__,
            "limits": {
                "max_rows": self.settings.max_rows,
                "max_body_bytes": self.settings.max_body_bytes,
                "files_by_path": self.settings.root is not None,
            },
            "explain": hasattr(self.pipeline, "explain"),
        }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


#: pydantic's tags for the members of a union, at the end of an error's location.
_TAG = re.compile(r"^(bool|int|float|str|none|FileData|(list|dict)\[.*\])$")


def _fold(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors located under ``body``, one per field: a value that matches no
    member of a union gets one error, not one per member."""
    out: list[dict[str, Any]] = []
    where: dict[tuple[Any, ...], dict[str, Any]] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        at = next(
            (n for n, part in enumerate(loc) if isinstance(part, str) and _TAG.match(part)), None
        )
        if at is None:
            out.append(_plain_error({**error, "loc": ("body", *loc)}))
            continue
        field, tag = ("body", *loc[:at]), loc[at]
        folded = where.get(field)
        if folded is None:
            folded = where[field] = _plain_error({**error, "loc": field})
            folded["type"], folded["msg"] = "no_kind_matches", ""
            out.append(folded)
        if tag in {"bool", "int", "float", "str"}:
            kinds = "give a finite number, a string, true/false or null"
            folded["msg"] = kinds if not folded["msg"] else folded["msg"]
        else:
            text = f"as {tag}: {error.get('msg')}"
            folded["msg"] = f"{folded['msg']}; {text}" if folded["msg"] else text
    return out


def _plain_error(error: Any) -> dict[str, Any]:
    """A validation error that JSON can carry: the input echoed only when it is a short
    scalar (a non-finite number as its text; never a whole list of rows back)."""
    out = {k: error[k] for k in ("type", "loc", "msg") if k in error}
    value = error.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        out["input"] = str(value)
    elif (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= 200)
    ):
        out["input"] = value
    return out


def _json_response(content: Any, status: int) -> Any:
    """A JSON response whatever the text holds (lone surrogates escaped, not an error)."""
    from fastapi import Response

    text = json.dumps(content, allow_nan=False, default=_plain, ensure_ascii=True)
    return Response(text, status_code=status, media_type="application/json")


def _plain(value: Any) -> Any:
    """A JSON value for what ``json`` cannot encode (numpy scalars in encoders' notes)."""
    return value.item() if hasattr(value, "item") else str(value)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, whether its
    Content-Length says so up front or its chunks add up to it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    from fastapi import HTTPException

                    raise HTTPException(413, _too_large_text(self.max_bytes))
            return message

        await self.app(scope, limited, send)


def _too_large_text(max_bytes: int) -> str:
    return f"the request body is over {max_bytes} bytes; send fewer rows per request"


async def _too_large(send: Send, max_bytes: int) -> None:
    body = json.dumps({"detail": _too_large_text(max_bytes)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _shape(value: Any) -> str:
    return "rows" if isinstance(value, list) else "row"


def create_app(settings: ServeSettings, scorer: Scorer | None = None) -> Any:
    """The FastAPI app for one run (``scorer``: an already loaded one)."""
    from fastapi import FastAPI, Request, Response
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import Discriminator, Tag, TypeAdapter, ValidationError, conlist

    scorer = scorer or Scorer(settings)
    Row = scorer.Row
    Rows = conlist(Row, min_length=1, max_length=settings.max_rows)
    Payload = Annotated[  # built at start-up, hence not a static type
        Union[Annotated[Row, Tag("row")], Annotated[Rows, Tag("rows")]],  # type: ignore[valid-type]  # noqa: UP007
        Discriminator(_shape),
    ]
    # The body is validated by pydantic-core straight from its bytes (FastAPI's own path
    # parses with json.loads and builds model instances: 3x slower); the OpenAPI page
    # still shows the schema.
    adapter: TypeAdapter[Any] = TypeAdapter(Payload)
    body_schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    schemas = body_schema.pop("$defs", {})
    body_doc = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}
    }

    def rows_of(body: bytes) -> tuple[list[dict[str, Any]], bool]:
        try:
            payload = adapter.validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        many = isinstance(payload, list)
        return (payload if many else [payload]), many

    config = scorer.pipeline.config
    app = FastAPI(
        title=f"transfuse: {config.name}",
        description=f"Scores of the run {Path(settings.run).name!r} ({config.task.type}, "
        f"target {config.task.target!r}). One row is an object, several a list "
        f"(at most {settings.max_rows}).",
        version=_version(),
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.scorer = scorer

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _json_response({"detail": _fold(list(exc.errors()))}, 422)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=422)

    @app.exception_handler(TransfuseError)
    async def _transfuse_error(request: Request, exc: TransfuseError) -> JSONResponse:
        error = {"loc": ["body"], "msg": exc.one_line(), "type": type(exc).__name__}
        return JSONResponse({"detail": [error]}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed: %s %s", request.method, request.url.path)
        detail = f"internal error: {type(exc).__name__}; the server goes on (see its log)"
        return JSONResponse({"detail": detail}, status_code=500)

    @app.get("/health", summary="Whether the server is up and its model loaded")
    def health() -> dict[str, Any]:
        return {"status": "ok", "run": Path(settings.run).name}

    @app.get("/metadata", summary="The run, its components and versions, its inputs and types")
    def metadata() -> dict[str, Any]:
        return scorer.metadata()

    @app.post(
        "/predict", summary="Score one row (an object) or several (a list)", openapi_extra=body_doc
    )
    async def predict(request: Request) -> Response:
        body = await request.body()  # over the limit: 413 (BodyLimit)

        def work() -> str:
            rows, many = rows_of(body)
            return scorer.predict_json(rows, many)

        text = await run_in_threadpool(work)  # the event loop stays free for /health
        return Response(text, media_type="application/json")

    if hasattr(scorer.pipeline, "explain"):

        @app.post(
            "/explain",
            summary="Why each row got its score (Pipeline.explain)",
            openapi_extra=body_doc,
        )
        async def explain(request: Request) -> Response:
            body = await request.body()

            def work() -> dict[str, Any]:
                rows, many = rows_of(body)
                records = scorer.explain(rows, many)
                return {"explanations": records} if many else {"explanation": records[0]}

            return _json_response(await run_in_threadpool(work), 200)

    original = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's page, with the request body's models among its schemas."""
        page: dict[str, Any] = original()
        page.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return page

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("transfuse-serve")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree
        return "0+unknown"


def app_from_env() -> Any:
    """The app for a ``--workers N`` worker process (settings from :data:`ENV`)."""
    settings = ServeSettings(**json.loads(os.environ[ENV]))
    return create_app(settings)


def check_port(host: str, port: int) -> None:
    """A ConfigError when the address cannot be bound (in use, not this machine's)."""
    if not 0 < port < 65536:
        raise ConfigError(f"port {port}", where="--port", fix="give a port from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot resolve {host!r}: {exc}", where="--host") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                where="--port",
                fix="choose a free port, or stop what listens there",
            ) from None


def serve(
    settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> None:
    """Load the run and serve it until interrupted (``workers`` processes, each with the model)."""
    import uvicorn

    if workers < 1:
        raise ConfigError(f"{workers} workers", where="--workers", fix="give 1 or more")
    check_port(host, port)
    scorer = Scorer(settings)  # a bad run fails here, before the server starts
    if workers == 1:
        uvicorn.run(create_app(settings, scorer), host=host, port=port)
        return
    os.environ[ENV] = json.dumps(asdict(settings))
    uvicorn.run(
        "transfuse_serve.app:app_from_env", factory=True, host=host, port=port, workers=workers
    )
