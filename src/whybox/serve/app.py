"""The dashboard's FastAPI app: a read-only JSON API over a folder, and one static page.

``create_app(folder)`` returns the app; ``whybox serve FOLDER`` runs it with uvicorn on
127.0.0.1. Routes (all GET, documented by ``/openapi.json``; the Swagger and ReDoc pages are
off, as they load scripts from a CDN):

- ``/api/index``: the folder's entries (:mod:`whybox.serve.index`), paged, filterable;
- ``/api/explanation``, ``.../beeswarm``, ``.../rows``, ``.../row``, ``.../grid``,
  ``.../csv``, ``/api/compare``: one saved Explanation (:mod:`whybox.serve._explanations`);
- ``/api/sae``, ``/api/features``, ``/api/feature``, ``/api/features/search``: SAEs and their
  FeatureData (one latent at a time, memory-mapped: 10^5 latents are never all loaded);
- ``/api/table``, ``/api/table/heatmap``: CSV tables (logit-lens tables, patching grids);
- ``/report?path=``: an HTML report as it is, under a ``sandbox`` content security policy
  (shown in a sandboxed iframe; it cannot reach the API);
- ``/``, ``/static/...``: the page (vanilla JS, no CDN, no network beyond this server).

Security: every path is a ``path`` query parameter resolved by :func:`whybox.serve._paths.resolve`
(no ``..``, absolute, hidden, NUL, backslash, double-encoded or symlinked-out paths: 400 or
404); page sizes are bounded by the query validation (422 beyond them); only GET and HEAD
are answered; the ``Host`` header must name this machine (``allowed_hosts``: a defence
against DNS rebinding); every response carries ``X-Content-Type-Options: nosniff``, and the
page a strict content security policy (no inline script, nothing from other origins). No
pickle is read and nothing is written.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import whybox.serve._explanations as X
from whybox.errors import InvalidParameterError, MissingDependencyError, WhyboxError

from ._paths import PathRefused
from ._store import Store, table_heatmap
from .index import FolderIndex

__all__ = ["DEFAULT_HOSTS", "create_app"]

#: ``Host`` header values accepted by default (plus the bound host, when the CLI names one)
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1", "testserver")

_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_REPORT_CSP = "sandbox allow-scripts allow-popups; frame-ancestors 'self'"


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise MissingDependencyError("fastapi", "serve", "whybox serve") from None
    return fastapi


def create_app(
    folder: str | os.PathLike[str],
    *,
    poll_interval: float = 2.0,
    allowed_hosts: tuple[str, ...] | list[str] | None = None,
) -> Any:
    """The dashboard app serving ``folder`` (read-only).

    Parameters
    ----------
    folder : path
        The folder to index and serve; it must exist.
    poll_interval : float, default 2.0
        Least seconds between two rescans of the folder (new files appear after this).
    allowed_hosts : sequence of str, optional
        ``Host`` header names accepted (default :data:`DEFAULT_HOSTS`).

    Returns
    -------
    fastapi.FastAPI
    """
    fastapi = _fastapi()
    from fastapi import Query
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    root = Path(folder)
    if not root.is_dir():
        raise InvalidParameterError(
            f"folder {str(folder)!r} is not an existing folder: pass the folder that holds "
            "the saved explanations, reports and SAE folders to serve."
        )
    index = FolderIndex(root, poll_interval=poll_interval)
    index.scan()
    store = Store(index.root)
    static = resources.files("whybox.serve") / "static"

    app = fastapi.FastAPI(
        title="whybox dashboard",
        description="Read-only JSON API over a folder of explanations, reports and SAEs.",
        version="1",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: /openapi.json only
        redoc_url=None,
    )
    app.state.index = index
    app.state.store = store
    hosts = list(allowed_hosts) if allowed_hosts is not None else list(DEFAULT_HOSTS)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)

    @app.middleware("http")
    async def _headers(request: Any, call_next: Any) -> Any:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("the dashboard is read-only", status_code=405)
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        if request.url.path.startswith("/report"):
            response.headers["Content-Security-Policy"] = _REPORT_CSP
        else:
            response.headers.setdefault("Content-Security-Policy", _PAGE_CSP)
            response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.exception_handler(PathRefused)
    async def _refused(request: Any, exc: PathRefused) -> Any:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(WhyboxError)
    async def _bad(request: Any, exc: WhyboxError) -> Any:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    def path_q() -> Any:
        return Query(..., description="path relative to the served folder", max_length=4096)

    def output_q() -> Any:
        return Query(0, ge=-64, le=4096, description="explained output (index)")

    # ------------------------------------------------------------ pages --
    @app.get("/", include_in_schema=False)
    def page() -> Any:
        return Response((static / "index.html").read_bytes(), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Any:
        if not re.fullmatch(r"[a-z]+\.(js|css)", name):
            raise PathRefused(404, "no such file.")
        f = static / name
        if not f.is_file():
            raise PathRefused(404, "no such file.")
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(f.read_bytes(), media_type=kind)

    @app.get("/report", summary="an HTML report as it is (sandboxed)")
    def report(path: str = path_q()) -> Any:
        return FileResponse(store.report(path), media_type="text/html")

    # ------------------------------------------------------------ index --
    @app.get("/api/index", summary="entries of the served folder")
    def api_index(
        kind: str | None = Query(None, pattern="^(explanation|report|sae|features|table)$"),
        q: str | None = Query(None, max_length=200, description="substring of the path"),
        offset: int = Query(0, ge=0),
        limit: int = Query(200, ge=1, le=1000),
    ) -> Any:
        entries = index.refresh()
        counts: dict[str, int] = {}
        for e in entries:
            counts[e["kind"]] = counts.get(e["kind"], 0) + 1
        if kind:
            entries = [e for e in entries if e["kind"] == kind]
        if q:
            needle = q.casefold()
            entries = [e for e in entries if needle in e["path"].casefold()]
        return X.clean({
            "root": index.root.name, "generation": index.generation, "counts": counts,
            "total": len(entries), "offset": offset, "truncated": index.truncated,
            "entries": entries[offset : offset + limit],
        })  # fmt: skip

    # ------------------------------------------------------- explanations --
    @app.get("/api/explanation", summary="summary and global importance of an explanation")
    def api_explanation(
        path: str = path_q(),
        output: int = output_q(),
        top: int = Query(30, ge=1, le=X.MAX_FEATURES),
    ) -> Any:
        return X.summary(store.explanation(path), output, top)

    @app.get("/api/explanation/beeswarm", summary="per-row attributions of the top features")
    def api_beeswarm(
        path: str = path_q(),
        output: int = output_q(),
        max_features: int = Query(15, ge=1, le=50),
        max_rows: int = Query(500, ge=1, le=X.MAX_BEESWARM_ROWS),
    ) -> Any:
        return X.beeswarm(store.explanation(path), output, max_features, max_rows)

    @app.get("/api/explanation/scatter", summary="dependence: feature value vs attribution")
    def api_scatter(
        path: str = path_q(),
        feature: str = Query(..., max_length=1000),
        output: int = output_q(),
        max_rows: int = Query(1000, ge=1, le=5000),
    ) -> Any:
        return X.scatter(store.explanation(path), feature, output, max_rows)

    @app.get("/api/explanation/rows", summary="a page of rows, filtered and sorted")
    def api_rows(
        path: str = path_q(),
        output: int = output_q(),
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=X.MAX_ROWS_PAGE),
        sort: str = Query("row", pattern="^(row|prediction|total|abs_total|feature)$"),
        descending: bool = False,
        q: str | None = Query(None, max_length=200),
        feature: str | None = Query(None, max_length=1000),
    ) -> Any:
        return X.rows(store.explanation(path), output, offset, limit, sort, descending, q, feature)

    @app.get("/api/explanation/row", summary="one row: waterfall, tokens or image heatmap")
    def api_row(
        path: str = path_q(),
        i: int = Query(..., ge=0),
        output: int = output_q(),
        max_features: int = Query(20, ge=1, le=X.MAX_FEATURES),
    ) -> Any:
        return X.row(store.explanation(path), i, output, max_features)

    @app.get("/api/explanation/grid", summary="a patching result as a grid")
    def api_grid(path: str = path_q(), output: int = output_q()) -> Any:
        return X.grid(store.explanation(path), output)

    @app.get("/api/explanation/csv", summary="the attributions as CSV (download)")
    def api_csv(path: str = path_q()) -> Any:
        exp = store.explanation(path)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:100] or "explanation"
        return Response(
            X.to_csv(exp),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'},
        )

    @app.get("/api/compare", summary="agreement of two explanations of the same rows")
    def api_compare(
        a: str = path_q(),
        b: str = path_q(),
        k: int = Query(5, ge=1, le=100),
        output: int = output_q(),
    ) -> Any:
        return X.compare(store.explanation(a), store.explanation(b), k, output)

    # ------------------------------------------------------------- SAEs --
    @app.get("/api/sae", summary="an SAE folder's configuration and its feature data")
    def api_sae(path: str = path_q()) -> Any:
        info = store.sae_cfg(path)
        entry = index.find(path.strip("/"))
        info["features"] = [] if entry is None else entry.get("features", [])
        return X.clean(info)

    @app.get("/api/features", summary="a page of latent summaries")
    def api_features(
        path: str = path_q(),
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=500),
        order: str = Query("index", pattern="^(index|density|max_activation)$"),
        descending: bool = True,
    ) -> Any:
        fd = store.features(path)
        page = fd.features(offset, limit, order=order, descending=descending)
        page["meta"] = _feature_meta(fd.meta)
        return X.clean(page)

    @app.get("/api/features/density", summary="histogram of log10 density over all latents")
    def api_density(path: str = path_q(), bins: int = Query(40, ge=5, le=200)) -> Any:
        import numpy as np

        fd = store.features(path)
        dens = np.asarray(fd.array("density"), dtype=float)
        alive = dens[dens > 0]
        logs = np.log10(alive) if alive.size else np.zeros(0)
        lo = float(logs.min()) if logs.size else -6.0
        hi = float(logs.max()) if logs.size else 0.0
        counts, edges = np.histogram(logs, bins=bins, range=(lo, max(hi, lo + 1e-9)))
        return X.clean({"edges": edges, "counts": counts, "n_dead": int((dens <= 0).sum()),
                        "n": int(dens.size)})  # fmt: skip

    @app.get("/api/feature", summary="one latent's page")
    def api_feature(path: str = path_q(), j: int = Query(..., ge=0)) -> Any:
        fd = store.features(path)
        if j >= len(fd):
            raise PathRefused(404, f"latent {j} is out of range (the SAE has {len(fd)}).")
        return X.clean(fd.feature(j))

    @app.get("/api/features/search", summary="latents by top token or by explanation text")
    def api_search(
        path: str = path_q(),
        token: str | None = Query(None, max_length=200),
        text: str | None = Query(None, max_length=200),
        limit: int = Query(50, ge=1, le=500),
    ) -> Any:
        fd = store.features(path)
        if (token is None) == (text is None):
            raise InvalidParameterError("search needs exactly one of token= or text=.")
        if token is not None:
            tok: Any = int(token) if re.fullmatch(r"\d{1,9}", token) and fd.vocab is None else token
            hits = fd.search(tok, limit=limit)
        else:
            hits = fd.search(text=text, limit=limit)
        items = [fd.features(j, 1)["items"][0] for j in hits]
        return X.clean({"total": len(items), "items": items})

    # ----------------------------------------------------------- tables --
    @app.get("/api/table", summary="a page of a CSV table")
    def api_table(
        path: str = path_q(), offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)
    ) -> Any:
        header, rows = store.table(path)
        return {"columns": header, "total": len(rows), "offset": offset,
                "rows": rows[offset : offset + limit]}  # fmt: skip

    @app.get("/api/table/heatmap", summary="a lens table or grid table as a heatmap")
    def api_table_heatmap(
        path: str = path_q(), value: str | None = Query(None, max_length=200)
    ) -> Any:
        header, rows = store.table(path)
        out = table_heatmap(header, rows[:200_000], value)
        if len(out["row_labels"]) > 500 or len(out["column_labels"]) > 500:
            raise PathRefused(413, "the table is too large for a heatmap (over 500 x 500).")
        return X.clean(out)

    return app


def _feature_meta(meta: dict[str, Any]) -> dict[str, Any]:
    keep = ("d_sae", "d_in", "site", "architecture", "model", "n_tokens", "n_sequences",
            "context_window", "n_top", "n_quantiles", "has_logits", "notes")  # fmt: skip
    return {k: meta.get(k) for k in keep}
