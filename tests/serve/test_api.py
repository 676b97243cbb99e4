"""The dashboard's JSON API (FastAPI TestClient): the index, each view against numpy
recomputations, paging bounds, path traversal (plain, URL-encoded, double-encoded, absolute,
symlinks), security headers, the watcher, the CLI command, and that nothing is ever written
inside the served folder."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient
from scipy.stats import spearmanr

from tests.serve._helpers import (
    HOSTILE,
    hostile_folder,
    synthetic_feature_data,
    tree_snapshot,
)
from whybox.explanation import load
from whybox.serve import create_app, is_loopback
from whybox.serve._paths import PathRefused, resolve


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("api")
    root = hostile_folder(base / "served", feature_data=synthetic_feature_data(300))
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.whybox").write_bytes((root / "tabular.whybox").read_bytes())
    (outside / "secret.html").write_text("<p>secret</p>", "utf-8")
    os.symlink(outside / "secret.whybox", root / "link_out.whybox")
    os.symlink(outside / "secret.html", root / "link_out.html")
    os.symlink(outside, root / "dir_out")
    os.symlink(root / "tabular.whybox", root / "link_in.whybox")
    # a FeatureData folder whose array file is a symlink out of the served folder
    bad = root / "bad_features"
    synthetic_feature_data(4).save(bad)
    (outside / "density.npy").write_bytes((bad / "density.npy").read_bytes())
    (bad / "density.npy").unlink()
    os.symlink(outside / "density.npy", bad / "density.npy")
    return root


@pytest.fixture(scope="module")
def client(folder):
    before = tree_snapshot(folder)
    with TestClient(create_app(folder, poll_interval=0.05)) as c:
        yield c
    assert tree_snapshot(folder) == before, "the dashboard wrote inside the served folder"


def get(client, url, status=200):
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:300])
    return r.json() if "json" in r.headers.get("content-type", "") else r


# --------------------------------------------------------------------------- index --
def test_index_lists_every_kind(client):
    data = get(client, "/api/index")
    by = {e["path"]: e for e in data["entries"]}
    assert by["tabular.whybox"]["view"] == "tabular" and by["tabular.whybox"]["n_rows"] == 30
    assert by[f"{HOSTILE}.whybox"]["view"] == "text"
    assert by["images/image.whybox"]["view"] == "image"
    assert by["patching.whybox"]["view"] == "grid"
    assert by["report.html"]["kind"] == "report"
    assert by["lens.csv"]["view"] == "lens"
    assert by["sae"]["kind"] == "sae" and by["sae"]["features"] == ["sae/features"]
    assert by["sae/features"]["d_sae"] == 300 and by["sae/features"]["n_explained"] == 20
    assert by["link_in.whybox"]["kind"] == "explanation"
    # symlinks out of the folder, and files inside a FeatureData folder, are not listed
    assert not any(p.startswith(("link_out", "dir_out", "sae/features/")) for p in by)
    assert data["counts"]["explanation"] == 6


def test_index_filters_pages_and_bounds(client):
    assert [e["path"] for e in get(client, "/api/index?kind=report")["entries"]] == ["report.html"]
    assert get(client, "/api/index?q=LENS")["total"] == 1
    page = get(client, "/api/index?limit=2&offset=1")
    assert len(page["entries"]) == 2 and page["total"] > 3
    get(client, "/api/index?limit=100000", 422)
    get(client, "/api/index?kind=passwd", 422)


def test_watcher_sees_new_changed_and_removed_files(tmp_path):
    from whybox.explanation import Explanation

    app = create_app(tmp_path, poll_interval=0.05)
    with TestClient(app) as c:
        assert get(c, "/api/index")["total"] == 0
        Explanation(np.ones((2, 3)), 0.0, method="a").save(tmp_path / "new.whybox")
        time.sleep(0.1)
        assert [e["method"] for e in get(c, "/api/index")["entries"]] == ["a"]
        Explanation(np.ones((5, 3)), 0.0, method="b").save(tmp_path / "new.whybox")
        time.sleep(0.1)
        entry = get(c, "/api/index")["entries"][0]
        assert (entry["method"], entry["n_rows"]) == ("b", 5)
        (tmp_path / "new.whybox").unlink()
        time.sleep(0.1)
        assert get(c, "/api/index")["total"] == 0


# -------------------------------------------------------------------- explanations --
def test_summary_and_beeswarm_match_numpy(client, folder):
    exp = load(folder / "tabular.whybox")
    v = np.asarray(exp.values)
    s = get(client, "/api/explanation?path=tabular.whybox")
    want = np.abs(v).mean(axis=0)
    order = np.argsort(-want)
    assert [d["feature"] for d in s["importance"]] == [exp.feature_names[j] for j in order]
    np.testing.assert_allclose([d["value"] for d in s["importance"]], want[order], rtol=1e-12)
    b = get(client, "/api/explanation/beeswarm?path=tabular.whybox&max_rows=7")
    rows = np.array(b["rows"])
    assert len(rows) == 7 and rows[0] == 0 and rows[-1] == 29
    top = b["features"][0]
    j = exp.feature_names.index(top["feature"])
    np.testing.assert_allclose(top["values"], v[rows, j], rtol=1e-12)
    col = exp.data.iloc[:, j].to_numpy(dtype=float)
    ranks = np.array([((col < c).sum() + ((col == c).sum() + 1) / 2) for c in col]) / len(col)
    np.testing.assert_allclose(top["colour"], ranks[rows], rtol=1e-12)


def test_rows_sort_filter_and_page(client, folder):
    exp = load(folder / "tabular.whybox")
    pred = exp.predictions
    page = get(client, "/api/explanation/rows?path=tabular.whybox&sort=prediction"
                       "&descending=true&limit=5&offset=2")  # fmt: skip
    assert [it["row"] for it in page["items"]] == list(np.argsort(-pred)[2:7])
    feat = get(client, "/api/explanation/rows?path=tabular.whybox&sort=feature&feature=income")
    col = np.asarray(exp.values)[:, exp.feature_names.index("income")]
    assert [it["row"] for it in feat["items"]] == list(np.argsort(col)[:50])
    age = str(exp.data["age"].iloc[3])
    hits = get(client, f"/api/explanation/rows?path=tabular.whybox&q={age}")
    assert 3 in [it["row"] for it in hits["items"]]
    assert all(age in " ".join(map(str, exp.row_data(it["row"]))) or age in it["label"]
               for it in hits["items"])  # fmt: skip
    text = get(client, f"/api/explanation/rows?path={HOSTILE}.whybox&q=dog")
    assert [it["row"] for it in text["items"]] == [1]
    get(client, "/api/explanation/rows?path=tabular.whybox&limit=501", 422)
    get(client, "/api/explanation/rows?path=tabular.whybox&sort=__class__", 422)
    get(client, "/api/explanation/rows?path=tabular.whybox&sort=feature&feature=nope", 400)


def test_row_waterfall_adds_up_to_the_prediction(client, folder):
    exp = load(folder / "tabular.whybox")
    r = get(client, "/api/explanation/row?path=tabular.whybox&i=4&max_features=2")
    v = np.asarray(exp.values)[4]
    assert [s["feature"] for s in r["steps"]] == [exp.feature_names[j] for j in
                                                  np.argsort(-np.abs(v))[:2]]  # fmt: skip
    total = r["base_value"] + sum(s["value"] for s in r["steps"]) + r["rest"]["value"]
    assert r["rest"]["n"] == 1
    assert total == pytest.approx(exp.predictions[4], abs=1e-12)
    get(client, "/api/explanation/row?path=tabular.whybox&i=30", 400)


def test_text_image_and_grid_rows(client, folder):
    t = get(client, f"/api/explanation/row?path={HOSTILE}.whybox&i=1")
    assert t["tokens"] == [HOSTILE, " dog", "\n", " ran"]
    assert t["values"] == [0.5, -0.1, 0.0, 0.2]
    exp = load(folder / "images" / "image.whybox")
    im = get(client, "/api/explanation/row?path=images/image.whybox&i=1")
    np.testing.assert_allclose(im["heatmap"], np.asarray(exp.values)[1].sum(axis=0), atol=1e-12)
    img = np.moveaxis(np.asarray(exp.data)[1], 0, -1)
    np.testing.assert_allclose(im["image"], np.round(img, 3), atol=1e-12)
    np.testing.assert_array_equal(im["segments"], np.asarray(exp.meta["segments"])[1])
    s = get(client, "/api/explanation?path=images/image.whybox")
    want = np.abs(np.asarray(exp.values)).mean(axis=0).sum(axis=0)
    np.testing.assert_allclose(s["importance_map"], want, atol=1e-12)
    g = get(client, "/api/explanation/grid?path=patching.whybox")
    grid = load(folder / "patching.whybox")
    np.testing.assert_allclose(g["values"], np.asarray(grid.values)[0].reshape(3, 4))
    assert g["row_labels"] == ["L0", "L1", "L2"] and g["column_labels"][-1] == "pos3"
    get(client, "/api/explanation/grid?path=tabular.whybox", 400)


def test_dependence_scatter(client, folder):
    exp = load(folder / "tabular.whybox")
    d = get(client, "/api/explanation/scatter?path=tabular.whybox&feature=income&max_rows=10")
    rows = np.array(d["rows"])
    assert d["numeric"] and len(rows) == 10
    np.testing.assert_allclose(d["x"], exp.data["income"].to_numpy()[rows])
    np.testing.assert_allclose(d["y"], np.asarray(exp.values)[rows, 1])
    get(client, "/api/explanation/scatter?path=tabular.whybox&feature=nope", 400)
    get(client, f"/api/explanation/scatter?path={HOSTILE}.whybox&feature=x", 400)


def test_compare_agreement_against_scipy(client, folder):
    a = np.abs(np.asarray(load(folder / "tabular.whybox").values))
    b = np.abs(np.asarray(load(folder / "tabular_other.whybox").values))
    c = get(client, "/api/compare?a=tabular.whybox&b=tabular_other.whybox&k=2")
    rho = np.mean([spearmanr(a[i], b[i]).statistic for i in range(len(a))])
    assert c["mean"]["spearman"] == pytest.approx(rho, abs=1e-12)
    top = [len(set(np.argsort(-a[i])[:2]) & set(np.argsort(-b[i])[:2])) / 2 for i in range(len(a))]
    assert c["mean"]["feature_agreement"] == pytest.approx(np.mean(top), abs=1e-12)
    get(client, f"/api/compare?a=tabular.whybox&b={HOSTILE}.whybox", 400)


def test_csv_download(client, folder):
    r = get(client, "/api/explanation/csv?path=tabular.whybox")
    assert r.headers["content-disposition"] == 'attachment; filename="tabular.csv"'
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][1:] == ["age", "income", HOSTILE]
    np.testing.assert_allclose(np.array(rows[1:], dtype=float)[:, 1:],
                               np.asarray(load(folder / "tabular.whybox").values))  # fmt: skip
    long = get(client, f"/api/explanation/csv?path={HOSTILE}.whybox")
    assert (
        long.headers["content-disposition"]
        == 'attachment; filename="_img_src_x_onerror_alert_1_.csv"'
    )
    assert "row,feature,value" in long.text.splitlines()[0]


def test_non_finite_numbers_are_null(tmp_path):
    from whybox.explanation import Explanation

    Explanation(np.array([[np.nan, 1.0]]), 0.0).save(tmp_path / "nan.whybox")
    with TestClient(create_app(tmp_path)) as c:
        r = c.get("/api/explanation/row?path=nan.whybox&i=0")
        assert r.status_code == 200 and "NaN" not in r.text
        assert None in [s["value"] for s in r.json()["steps"]]


# ------------------------------------------------------------------------- features --
def test_feature_pages_and_paging(client, folder):
    from whybox.sae.features import FeatureData

    fd = FeatureData.load(folder / "sae" / "features")
    page = get(client, "/api/features?path=sae/features&offset=290&limit=50")
    assert page["total"] == 300 and [it["index"] for it in page["items"]] == list(range(290, 300))
    dens = np.asarray(fd.density)
    by = get(client, "/api/features?path=sae/features&order=density&limit=5")
    assert [it["index"] for it in by["items"]] == list(np.argsort(-dens, kind="stable")[:5])
    get(client, "/api/features?path=sae/features&limit=501", 422)
    f = get(client, "/api/feature?path=sae/features&j=17")
    assert f["density"] == dens[17]
    np.testing.assert_allclose([c["activation"] for c in f["top_contexts"]],
                               np.asarray(fd.top_values)[17], rtol=1e-6)  # fmt: skip
    assert f["top_contexts"][0]["tokens"] == [f" tok{t}" if t != 7 else HOSTILE
                                              for t in np.asarray(fd.top_tokens)[17, 0]]  # fmt: skip
    assert f["explanation"] == {"text": "pattern number 17", "score": 0.5}
    get(client, "/api/feature?path=sae/features&j=300", 404)


def test_density_histogram(client, folder):
    from whybox.sae.features import FeatureData

    dens = np.asarray(FeatureData.load(folder / "sae" / "features").density)
    h = get(client, "/api/features/density?path=sae/features&bins=10")
    logs = np.log10(dens[dens > 0])
    counts, edges = np.histogram(logs, bins=10, range=(logs.min(), logs.max()))
    assert h["counts"] == counts.tolist() and h["n"] == 300
    np.testing.assert_allclose(h["edges"], edges)
    assert h["n_dead"] == int((dens == 0).sum())
    get(client, "/api/features/density?path=sae/features&bins=100000", 422)


def test_feature_search(client, folder):
    from whybox.sae.features import FeatureData

    fd = FeatureData.load(folder / "sae" / "features")
    centre = np.asarray(fd.top_tokens)[:, :, 4]
    promoted = np.asarray(fd.logit_pos_ids)
    want = {j for j in range(300) if (centre[j] == 7).any() or (promoted[j] == 7).any()}
    hits = get(client, f"/api/features/search?path=sae/features&token={HOSTILE}&limit=500")
    assert {it["index"] for it in hits["items"]} == want
    text = get(client, "/api/features/search?path=sae/features&text=NUMBER 1")
    assert [it["index"] for it in text["items"]] == [1, *range(10, 20)]
    get(client, "/api/features/search?path=sae/features", 400)


def test_sae_and_tables(client):
    s = get(client, "/api/sae?path=sae")
    assert s["cfg"]["d_sae"] == 32 and s["features"] == ["sae/features"]
    h = get(client, "/api/table/heatmap?path=lens.csv")
    assert h["values"] == [[0.1, 0.2], [0.3, 0.9]] and h["text"][0][1] == HOSTILE
    assert get(client, "/api/table?path=lens.csv&limit=1")["total"] == 4
    get(client, "/api/table?path=lens.csv&limit=1001", 422)


def test_report_is_served_sandboxed(client):
    r = get(client, "/report?path=report.html")
    assert "A report" in r.text
    assert r.headers["content-security-policy"].startswith("sandbox allow-scripts")
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    static = Path(__file__).parents[2] / "src/whybox/serve/static"
    for f in static.iterdir():  # no CDN, no network: the only URL is the SVG namespace
        text = f.read_text().replace("http://www.w3.org/2000/svg", "")
        assert "http:" not in text and "https:" not in text and "//cdn" not in text, f.name


# ------------------------------------------------------------------------- security --
TRAVERSALS = [
    ("../outside/secret.whybox", 400),
    ("..%2Foutside%2Fsecret.whybox", 400),
    ("%2e%2e/outside/secret.whybox", 400),
    ("%252e%252e%252foutside%252fsecret.whybox", 400),
    ("%25252e%25252e/outside/secret.whybox", 400),
    ("images/../../outside/secret.whybox", 400),
    ("/etc/passwd", 400),
    ("%2Fetc%2Fpasswd", 400),
    ("~/x.whybox", 400),
    ("..%5Coutside%5Csecret.whybox", 400),
    ("tabular.whybox%00.html", 400),
    (".hidden.whybox", 400),
    ("link_out.whybox", 404),
    ("dir_out/secret.whybox", 404),
    ("missing.whybox", 404),
]


@pytest.mark.parametrize(("path", "status"), TRAVERSALS)
@pytest.mark.parametrize("route", ["/api/explanation", "/api/explanation/csv", "/report",
                                   "/api/table", "/api/features"])  # fmt: skip
def test_traversal_is_refused(client, route, path, status):
    r = client.get(f"{route}?path={path}")
    assert r.status_code in (status, 404), (route, path, r.status_code)
    assert "secret" not in r.text


def test_traversal_cases_escape_without_the_checks(folder):
    """The refused paths are real escapes: a plain join (decoded as a server would) leaves
    the folder, so the test above would fail without the checks."""
    from urllib.parse import unquote

    root = folder.resolve()
    escaping = 0
    for path, _ in TRAVERSALS:
        rel = path
        for _ in range(3):
            rel = unquote(rel)
        rel = rel.replace("\\", "/").replace("~", "..").split("\x00")[0]
        real = (root / rel).resolve()
        escaping += root not in real.parents and real.exists()
    assert escaping >= 8


def test_symlinks_inside_are_served_and_array_files_out_refused(client):
    assert get(client, "/api/explanation?path=link_in.whybox")["n_rows"] == 30
    r = client.get("/api/features?path=bad_features")
    assert r.status_code == 422 and "lie in its folder" in r.json()["detail"]


def test_static_route_refuses_traversal(client):
    for url in ["/static/..%2Fapp.py", "/static/%2e%2e%2f__init__.py", "/static/../app.py",
                "/static/index.html", "/static/app.js.map"]:  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.get("/static/app.js").status_code == 200


def test_resolve_directly(folder):
    root = folder.resolve()
    assert resolve(root, "images/image.whybox") == root / "images" / "image.whybox"
    for bad in ["", "a\x00b", "..", "a/../../b", "C:/x", "%2e%2e", "x" * 5000]:
        with pytest.raises(PathRefused) as e:
            resolve(root, bad)
        assert e.value.status == 400, bad


def test_read_only_and_host_checked(client):
    assert client.post("/api/index").status_code == 405
    assert client.delete("/api/explanation?path=tabular.whybox").status_code == 405
    assert client.get("/api/index", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/api/index", headers={"host": "127.0.0.1:8765"}).status_code == 200


def test_openapi_documents_the_routes(client):
    spec = get(client, "/openapi.json")
    for route in ["/api/index", "/api/explanation/rows", "/api/feature", "/api/features/search",
                  "/api/compare", "/api/table/heatmap"]:  # fmt: skip
        assert route in spec["paths"]
    limit = next(p for p in spec["paths"]["/api/features"]["get"]["parameters"]
                 if p["name"] == "limit")  # fmt: skip
    assert limit["schema"]["maximum"] == 500
    assert client.get("/docs").status_code == 404  # Swagger UI would load a CDN


def test_no_pickle_in_the_package():
    src = Path(__file__).parents[2] / "src" / "whybox" / "serve"
    for f in src.rglob("*.py"):
        text = f.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, f


# ---------------------------------------------------------------------------- CLI --
def test_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_cli_serve(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    import whybox.serve
    from whybox._cli_serve import register

    calls = []
    monkeypatch.setattr(whybox.serve, "serve", lambda folder, **kw: calls.append((folder, kw)))

    def fail(exc):
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)

    app = typer.Typer()
    register(app, fail=fail)

    @app.command("other")
    def other() -> None:  # a second command keeps "serve" a named subcommand
        pass

    runner = CliRunner()
    r = runner.invoke(app, ["serve", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert calls[-1][1]["host"] == "127.0.0.1" and calls[-1][1]["port"] == 8765
    assert "warning" not in r.output
    r = runner.invoke(app, ["serve", str(tmp_path), "--host", "0.0.0.0", "--port", "9000"])
    assert r.exit_code == 0 and "not a loopback address" in r.output
    assert calls[-1][1]["port"] == 9000
    r = runner.invoke(app, ["serve", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not an existing folder" in r.output
    assert json.dumps(calls[0][1])  # plain arguments only


# ------------------------------------------------------ real internals results --
def test_patching_and_lens_results_written_by_whybox(tmp_path):
    """A patching Explanation saved as it is and a LogitLens table written with
    ``to_frame().to_csv``: the grid and the heatmap equal ``patching_grid`` and the frame."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import pandas as pd

    from tests.internals.tiny import build, input_ids
    from whybox.internals.lens import logit_lens
    from whybox.internals.patching import activation_patching, patching_grid

    model = build("gpt2")
    clean, corrupted = input_ids(batch=1, pos=5, seed=1), input_ids(batch=1, pos=5, seed=2)

    def metric(logits):
        return logits[:, -1, 5] - logits[:, -1, 6]

    with torch.no_grad():
        exp = activation_patching(model, clean, corrupted, lambda lg: metric(lg).mean())
    exp.save(tmp_path / "patch.whybox")
    lens = logit_lens(model, clean, target=7)
    frame = lens.to_frame()
    frame.to_csv(tmp_path / "lens.csv", index=False)
    with TestClient(create_app(tmp_path)) as c:
        kinds = {e["path"]: e.get("view") for e in get(c, "/api/index")["entries"]}
        assert kinds == {"patch.whybox": "grid", "lens.csv": "lens"}
        g = get(c, "/api/explanation/grid?path=patch.whybox")
        want = patching_grid(exp)
        np.testing.assert_allclose(g["values"], want.to_numpy(), rtol=1e-12)
        assert g["row_labels"] == list(want.index) and g["column_labels"] == list(want.columns)
        h = get(c, "/api/table/heatmap?path=lens.csv")
        assert h["value"] == "target_prob"
        pivot = frame.pivot(index="label", columns="position", values="target_prob")
        pivot = pivot.loc[pd.unique(frame["label"])]
        np.testing.assert_allclose(h["values"], pivot.to_numpy(), rtol=1e-6)
        assert h["text"][0][0] == str(frame["top_1"].iloc[0])


def test_multi_output_explanations_pick_one_output(tmp_path):
    from whybox.explanation import Explanation

    rng = np.random.default_rng(3)
    v = rng.normal(size=(6, 4, 3))
    base = np.zeros((6, 3))
    Explanation(v, base, predictions=v.sum(1), output_names=["a", "<b>", "c"],
                method="m").save(tmp_path / "multi.whybox")  # fmt: skip
    Explanation(v[..., ::-1], base, output_names=["c", "<b>", "a"],
                method="n").save(tmp_path / "rev.whybox")  # fmt: skip
    with TestClient(create_app(tmp_path)) as c:
        s = get(c, "/api/explanation?path=multi.whybox&output=1")
        assert s["output_names"] == ["a", "<b>", "c"] and s["n_outputs"] == 3
        want = np.abs(v[..., 1]).mean(axis=0)
        np.testing.assert_allclose(sorted(d["value"] for d in s["importance"]), sorted(want))
        r = get(c, "/api/explanation/row?path=multi.whybox&i=2&output=2&max_features=4")
        assert r["prediction"] == pytest.approx(v[2, :, 2].sum())
        assert sum(st["value"] for st in r["steps"]) == pytest.approx(v[2, :, 2].sum())
        rows = get(c, "/api/explanation/rows?path=multi.whybox&output=0&sort=total")
        assert [it["row"] for it in rows["items"]] == list(np.argsort(v[..., 0].sum(1)))
        get(c, "/api/explanation?path=multi.whybox&output=3", 400)
        cmp_ = get(c, "/api/compare?a=multi.whybox&b=rev.whybox&k=2&output=1")
        assert cmp_["mean"]["spearman"] == pytest.approx(1.0)


def test_a_hundred_thousand_latents_are_paged_from_memory_maps(tmp_path):
    fd = synthetic_feature_data(100_000, n_top=2, explained=3)
    fd.save(tmp_path / "features")
    dens = np.asarray(fd.density)
    app = create_app(tmp_path)
    with TestClient(app) as c:
        last = get(c, "/api/features?path=features&offset=99990&limit=50")
        assert [it["index"] for it in last["items"]] == list(range(99_990, 100_000))
        top = get(c, "/api/features?path=features&order=density&limit=3&offset=10")
        assert [it["index"] for it in top["items"]] == list(np.argsort(-dens, kind="stable")[10:13])
        page = get(c, "/api/feature?path=features&j=99999")
        assert page["density"] == dens[99_999]
    loaded = app.state.store.features("features")
    assert isinstance(loaded.array("top_tokens"), np.memmap)  # never read whole


def test_damaged_files_are_listed_with_an_error_and_refused(tmp_path):
    (tmp_path / "broken.whybox").write_bytes(b"PK\x03\x04 not a zip")
    (tmp_path / "empty.csv").write_text("", "utf-8")
    (tmp_path / "notes.txt").write_text("ignored", "utf-8")
    with TestClient(create_app(tmp_path)) as c:
        entries = {e["path"]: e for e in get(c, "/api/index")["entries"]}
        assert set(entries) == {"broken.whybox", "empty.csv"}
        assert entries["broken.whybox"]["error"].startswith("unreadable")
        r = c.get("/api/explanation?path=broken.whybox")
        assert r.status_code == 422 and "not a whybox explanation file" in r.json()["detail"]
        assert c.get("/api/explanation?path=notes.txt").status_code == 404
