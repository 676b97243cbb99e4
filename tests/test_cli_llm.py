"""``whybox rag``, ``whybox autointerp`` and ``whybox cot`` on the zoo's tiny LM.

The commands are wrappers, so each is checked against an independent path to the same
numbers: the ``rag`` values against Shapley values enumerated here over every ordering of
the documents, from the log-probabilities of prompts the test builds itself; the endpoint
path against the local one (the test server computes log-probabilities with its own forward
pass); the latents ``autointerp --top`` picks against a numpy sort of the firing counts, and
its explanations against the activating tokens of the feature pages; the monitor's spans
against :func:`re.finditer`; the faithfulness AOC against the trapezoid rule applied to the
printed curve. The API key reaches the server and no output (a sentinel). Bad input follows
the command line's rule (:func:`tests.test_cli_bad_input.check_bad_input`): one line, exit 2,
nothing written.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from tests.test_cli_bad_input import BadInput, check_bad_input  # noqa: E402
from whybox.cli import app  # noqa: E402
from whybox.zoo.tinylm import tiny_lm_corpus, tiny_lm_path  # noqa: E402

runner = CliRunner()
WIDE = {"COLUMNS": "250"}
KEY = "sk-SENTINEL-cli-0123456789abcdef"
KEY_VAR = "WHYBOX_TEST_CLI_LLM_KEY"
QUERY = "What is an identifier?"
ANSWER = " An identifier is a name"
DOCS = [
    "An identifier occurring as an atom is a name.",
    "Python supports string and bytes literals and various numeric literals.",
    "Assignment statements are used to bind names to values <script>alert(1)</script>.",
]
TRACE = "First I will bypass the tests, then compute 12 + 30 = 42. <b>Done</b>."


@pytest.fixture(scope="module")
def lm_dir():
    return tiny_lm_path()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-llm")
    (d / "docs.txt").write_text("\n".join(DOCS) + "\n", "utf-8")
    (d / "docs.json").write_text(json.dumps([{"text": t} for t in DOCS]), "utf-8")
    (d / "docdir").mkdir()
    for i, t in enumerate(DOCS):
        (d / "docdir" / f"{i}.txt").write_text(t, "utf-8")
    (d / "dups.txt").write_text("one doc\ntwo doc\none  doc\n", "utf-8")
    (d / "empty.txt").write_text("\n\n", "utf-8")
    (d / "bad.json").write_text('{"a": 1}', "utf-8")
    (d / "trace.txt").write_text(TRACE, "utf-8")
    (d / "traces.json").write_text(json.dumps([TRACE, "All is fine here."]), "utf-8")
    (d / "emptydir").mkdir()
    (d / "pickled").mkdir()  # a model folder whose weights are a pickle
    (d / "pickled" / "config.json").write_text("{}")
    (d / "pickled" / "pytorch_model.bin").write_bytes(b"not unpickled")
    return d


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """A FeatureData folder of an untrained TopK SAE on the tiny LM (as the autointerp data
    tests build one), with a file of the user's beside the arrays."""
    from whybox.sae.features import feature_data
    from whybox.sae.models import SAE, SAEConfig
    from whybox.zoo.tinylm import tiny_lm

    lm, tok = tiny_lm()
    cfg = SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4, hook_name="blocks.2.resid_post")
    sae = SAE.create(cfg, random_state=1)
    fd = feature_data(sae, lm, tiny_lm_corpus("train")[:6], tokenizer=tok, context_size=32,
                      n_top=8, n_quantiles=3, examples_per_quantile=3, batch_size=8)  # fmt: skip
    folder = fd.save(tmp_path_factory.mktemp("cli-llm-features") / "features")
    (folder / "notes.txt").write_text("mine\n")
    return folder


def _ok(args, env=None):
    res = runner.invoke(app, args, env={**WIDE, **(env or {})})
    assert res.exit_code == 0, res.output[-3000:]
    return res


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _brute_shapley(lm_dir):
    """Exact Shapley values of the documents from every ordering, with v(S) the answer's
    log-probability after a prompt built here from the documents kept (in their order)."""
    from whybox.llm.local import LocalBackend
    from whybox.zoo.tinylm import tiny_lm

    be = LocalBackend(*tiny_lm())
    n = len(DOCS)
    subsets = list(itertools.product([0, 1], repeat=n))
    prompts = [
        "\n\n".join(d for d, k in zip(DOCS, s, strict=True) if k) + f"\n\nQuestion: {QUERY}\nAnswer: "
        for s in subsets
    ]  # fmt: skip
    v = dict(zip(subsets, be.logprobs(prompts, [ANSWER] * len(prompts)), strict=True))
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        s = [0] * n
        for j in order:
            before = v[tuple(s)]
            s[j] = 1
            phi[j] += v[tuple(s)] - before
    return phi / math.factorial(n)


# ---------------------------------------------------------------------- rag
def test_rag_values_are_shapley_by_enumeration(lm_dir, files, tmp_path):
    out = tmp_path / "out"
    res = _ok(["rag", "--model", str(lm_dir), "--query", QUERY, "--docs", str(files / "docs.txt"),
               "--answer", ANSWER, "--method", "exact", "--csv", str(out / "s.csv"),
               "--html", str(out / "page.html"), "--cost-quality",
               "--cost-quality-methods", "leave_one_out,kernel", "--budgets", "8"])  # fmt: skip
    rows = _read_csv(out / "s.csv")
    got = np.array([float(r["value"]) for r in rows])
    np.testing.assert_allclose(got, _brute_shapley(lm_dir), atol=1e-4)
    assert [r["text"] for r in rows] == DOCS
    ranks = np.array([int(r["rank"]) for r in rows])
    assert ranks.tolist() == (np.argsort(np.argsort(-got, kind="stable")) + 1).tolist()
    # the table lists the sources best first, and the cost-quality rows
    table_rows = [ln for ln in res.stdout.splitlines() if re.match(r"^│\s+\d+ │", ln)]
    first = [int(x) for x in re.findall(r"│\s+(\d+)\s", table_rows[0])[:2]]
    assert first == [1, int(np.argmax(got))]
    assert re.search(r"│ exact\s+│\s+8 │\s+8 │", res.stdout)
    assert re.search(r"│ leave_one_out\s+│\s+5 │", res.stdout)
    assert "kernel" in res.stdout
    page = (out / "page.html").read_text("utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
    # the same documents as JSON and as a folder give the same values
    for docs in ("docs.json", "docdir"):
        _ok(["rag", "--model", str(lm_dir), "--query", QUERY, "--docs", str(files / docs),
             "--answer", ANSWER, "--method", "exact", "--csv", str(tmp_path / f"{docs}.csv")])  # fmt: skip
        again = [float(r["value"]) for r in _read_csv(tmp_path / f"{docs}.csv")]
        np.testing.assert_allclose(again, got, atol=1e-9)


def test_rag_sentences_by_regenerated_answer_similarity(lm_dir, files, tmp_path):
    """--value similarity (for backends without logprobs) over --granularity sentence: one
    source per sentence, each labelled with its document; no answer given, so the model's
    own greedy answer is explained (and the table says so)."""
    docs = tmp_path / "two.txt"
    docs.write_text("A name is bound. It is local.\nA class is a type.\n", "utf-8")
    res = _ok(["rag", "--model", str(lm_dir), "--query", QUERY, "--docs", str(docs),
               "--value", "similarity", "--granularity", "sentence", "--method", "exact",
               "--csv", str(tmp_path / "s.csv")])  # fmt: skip
    rows = _read_csv(tmp_path / "s.csv")
    assert [r["text"] for r in rows] == ["A name is bound.", "It is local.", "A class is a type."]
    assert [int(r["document"]) for r in rows] == [0, 0, 1]
    assert "(generated by the model)" in res.stdout and "similarity" in res.stdout
    values = np.array([float(r["value"]) for r in rows])
    m = re.search(r"all sources ([-+][\d.]+), none ([-+][\d.]+)", res.stdout)
    assert values.sum() == pytest.approx(float(m.group(1)) - float(m.group(2)), abs=2e-4)


def test_rag_over_an_endpoint_sends_the_key_and_never_shows_it(lm_dir, files, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from tests.llm._server import free_port, serve
    from whybox.zoo.tinylm import tiny_lm

    base = ["rag", "--query", QUERY, "--docs", str(files / "docs.txt"), "--answer", ANSWER,
            "--method", "exact", "--max-retries", "0"]  # fmt: skip
    _ok([*base, "--model", str(lm_dir), "--csv", str(tmp_path / "local.csv")])
    local = [float(r["value"]) for r in _read_csv(tmp_path / "local.csv")]
    env = {KEY_VAR: KEY}
    with serve(*tiny_lm()) as server:
        url = ["--endpoint", server.url, "--endpoint-model", "tiny", "--api-key-env", KEY_VAR]
        res = _ok([*base, *url, "--csv", str(tmp_path / "remote.csv")], env=env)
        assert KEY not in res.output
        assert server.state.auth and set(server.state.auth) == {f"Bearer {KEY}"}
        remote = [float(r["value"]) for r in _read_csv(tmp_path / "remote.csv")]
        np.testing.assert_allclose(remote, local, atol=1e-3)
        # the same server answers the faithfulness tests (generate over chat completions)
        n0 = server.state.requests
        res = _ok(["cot", "faithfulness", *url, "--prompt", "A class is", "--tests",
                   "early_answering", "--max-cot-tokens", "8", "--max-answer-tokens", "2",
                   "--max-retries", "0"], env=env)  # fmt: skip
        assert server.state.requests > n0 and KEY not in res.output
        assert re.search(r"early_answering_aoc\s+│\s+[\d.]+", res.stdout)
        # an endpoint that cannot score continuations: exit 2, the option to use instead named
        server.state.mode = "no_echo"
        res = runner.invoke(app, [*base, *url], env=env)
        assert res.exit_code == 2 and "cannot score a given continuation" in res.stderr
        assert "value= is --value" in res.stderr and len(res.stderr.strip().splitlines()) == 1
        # a careless server echoing the header in a 500: exit 1, the status said, key hidden
        server.state.mode, server.state.status, server.state.leak_auth = "error", 500, True
        res = runner.invoke(app, [*base, *url, "--csv", str(tmp_path / "x.csv")], env=env)
        assert res.exit_code == 1, res.output
        assert "HTTP 500" in res.stderr and KEY not in res.output
        assert not (tmp_path / "x.csv").exists()
    port = free_port()
    res = runner.invoke(app, [*base, "--endpoint", f"http://127.0.0.1:{port}", "--endpoint-model",
                              "tiny", "--api-key-env", KEY_VAR], env=env)  # fmt: skip
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not connect" in lines[0] and KEY not in res.output


# ---------------------------------------------------------------------- autointerp
def test_autointerp_offline_top_latents_out_and_attach(features, lm_dir, tmp_path):
    from whybox.sae.features import FeatureData

    fd = FeatureData.load(features)
    firing = np.asarray(fd.n_firing)
    want = np.argsort(-firing, kind="stable")[:2].tolist()
    out = tmp_path / "ai.json"
    res = _ok(["autointerp", str(features), "--top", "2", "--scorers", "simulation,detection",
               "--n-examples", "4", "--out", str(out), "--attach"])  # fmt: skip
    data = json.loads(out.read_text("utf-8"))
    assert [r["latent"] for r in data["rows"]] == want
    back = FeatureData.load(features)
    for r in data["rows"]:
        j = r["latent"]
        assert r["explainer"] == "offline" and -1 <= r["simulation"] <= 1
        assert 0 <= r["detection_balanced_accuracy"] <= 1
        named = json.loads("[" + r["explanation"][7:].split("; often after")[0] + "]")
        top = {t for p in fd.feature(j)["top_contexts"][:4]
               for t, a in zip(p["tokens"], p["activations"], strict=True) if a > 0}  # fmt: skip
        assert set(named) <= top  # the explanation names tokens where the latent fired
        assert back.feature(j)["explanation"]["text"] == r["explanation"]
        assert re.search(rf"│\s+{j} │\s+{firing[j]} │", res.stdout)
    assert (features / "notes.txt").read_text() == "mine\n"  # the folder kept the user's file
    # --latents names them directly; the sidecar is written into the folder without --out
    _ok(["autointerp", str(features), "--latents", f"{want[1]}", "--scorers", "detection",
         "--n-examples", "4", "--attach"])  # fmt: skip
    side = json.loads((features / "autointerp.json").read_text("utf-8"))
    assert [r["latent"] for r in side["rows"]] == [want[1]]
    # a local model as explainer and scorer: its explanation is the first line it writes
    res = _ok(["autointerp", str(features), "--latents", str(want[0]), "--model", str(lm_dir),
               "--scorers", "detection", "--n-examples", "3", "--out", str(tmp_path / "m.json")])  # fmt: skip
    row = json.loads((tmp_path / "m.json").read_text("utf-8"))["rows"][0]
    assert row["explainer"] == str(lm_dir) and "detection_auroc" in row
    assert f"({lm_dir} explainer)" in res.stdout and row["explanation"].strip()


# ---------------------------------------------------------------------- cot
def test_cot_monitor_spans_are_the_regex_matches(files, lm_dir, tmp_path):
    page = tmp_path / "cot.html"
    pats = [r"bypass", r"\d+"]
    res = _ok(["cot", "--trace", str(files / "trace.txt"), "--regex", pats[0], "--regex", pats[1],
               "--html", str(page)])  # fmt: skip
    want = sorted((m.start(), m.end(), m.group()) for p in pats
                  for m in re.finditer(p, TRACE, re.IGNORECASE))  # fmt: skip
    got = [(int(a), int(b), t) for a, b, t in
           re.findall(r"│\s+0 │\s+(\d+) │\s+(\d+) │ regex\s+│ \S+\s+│ (\S+)\s+│", res.stdout)]  # fmt: skip
    assert got == want
    assert "1 of 1 traces flagged" in res.stdout
    html = page.read_text("utf-8")
    assert "<b>Done" not in html and "&lt;b&gt;Done" in html
    # a JSON list of traces, the built-in patterns, and --fail-on-flag's exit code
    res = runner.invoke(app, ["cot", "--trace", str(files / "traces.json"), "--fail-on-flag"],
                        env=WIDE)  # fmt: skip
    assert res.exit_code == 3 and "1 of 2 traces flagged" in res.stdout
    res = _ok(["cot", "--text", "A calm and honest derivation.", "--fail-on-flag"])
    assert "0 of 1 traces flagged" in res.stdout
    # regex and a local LLM judge combined ("any"): one row per monitor under the combined one
    res = _ok(["cot", "--text", TRACE, "--regex", "bypass", "--judge-model", str(lm_dir),
               "--unparseable", "flag"])  # fmt: skip
    assert re.search(r"│\s+0 │ combined\s+│ 1\.000 │ FLAGGED │", res.stdout)
    assert re.search(r"│\s+│ regex\s+│ 1\.000 │ FLAGGED │\s+1 │", res.stdout)
    assert re.search(r"│\s+│ judge\s+│ [\d.]+ │", res.stdout)


def test_cot_faithfulness_aoc_is_the_area_over_the_printed_curve(lm_dir, tmp_path):
    res = _ok(["cot", "faithfulness", "--model", str(lm_dir), "--prompt", "A class is",
               "--prompt", "The for statement", "--tests", "early_answering,filler",
               "--max-cot-tokens", "12", "--max-answer-tokens", "3",
               "--html", str(tmp_path / "f.html")])  # fmt: skip
    curve = [(float(f), float(a)) for f, a in
             re.findall(r"│\s+(\d\.\d) │\s+(\d\.\d+) │", res.stdout)]  # fmt: skip
    assert [f for f, _ in curve] == pytest.approx(np.linspace(0, 1, 11).tolist())
    fr, ag = np.array(curve).T
    aoc = float(re.search(r"early_answering_aoc\s+│\s+([\d.]+)", res.stdout).group(1))
    trap = float(np.sum((ag[1:] + ag[:-1]) / 2 * np.diff(fr)))
    assert aoc == pytest.approx(1 - trap, abs=1e-3)
    assert ag[-1] == 1.0  # the full CoT agrees with itself
    assert "verdict:" in res.stdout and (tmp_path / "f.html").is_file()


# ---------------------------------------------------------------------- bad input
def _bad(lm: str) -> list[BadInput]:
    rag = ("rag", "--query", QUERY, "--model", lm)
    ai = ("autointerp",)
    return [
        BadInput("rag-missing-docs", (*rag, "--docs", "{d}/nope.txt"), r"--docs .*does not exist"),
        BadInput(
            "rag-dup-docs", (*rag, "--docs", "{d}/dups.txt"), r"duplicates: documents 0 and 2"
        ),
        BadInput("rag-empty-docs", (*rag, "--docs", "{d}/empty.txt"), r"--docs .* is empty"),
        BadInput("rag-empty-folder", (*rag, "--docs", "{d}/emptydir"), r"holds no files"),
        BadInput("rag-json-not-list", (*rag, "--docs", "{d}/bad.json"), r"JSON dict"),
        BadInput(
            "rag-method",
            (*rag, "--docs", "{d}/docs.txt", "--method", "magic"),
            r"--method 'magic' .* contextcite",
        ),
        BadInput(
            "rag-no-model",
            ("rag", "--query", "q", "--docs", "{d}/docs.txt"),
            r"no language model: pass --model",
        ),
        BadInput(
            "rag-missing-model",
            ("rag", "--query", "q", "--docs", "{d}/docs.txt", "--model", "{d}/nomodel"),
            r"--model: model folder .* does not exist",
        ),
        BadInput(
            "rag-both",
            (*rag, "--docs", "{d}/docs.txt", "--endpoint", "http://127.0.0.1:9"),
            r"--model and --endpoint are both given",
        ),
        BadInput(
            "rag-endpoint-no-name",
            ("rag", "--query", "q", "--docs", "{d}/docs.txt", "--endpoint", "http://127.0.0.1:9"),
            r"--endpoint needs --endpoint-model",
        ),
        BadInput(
            "rag-key-var-unset",
            (
                "rag",
                "--query",
                "q",
                "--docs",
                "{d}/docs.txt",
                "--endpoint",
                "http://127.0.0.1:9",
                "--endpoint-model",
                "m",
                "--api-key-env",
                "WHYBOX_TEST_NO_SUCH_VAR_42",
            ),
            r"environment variable WHYBOX_TEST_NO_SUCH_VAR_42, which is not set",
        ),
        BadInput(
            "rag-key-not-a-name",
            (
                "rag",
                "--query",
                "q",
                "--docs",
                "{d}/docs.txt",
                "--endpoint",
                "http://127.0.0.1:9",
                "--endpoint-model",
                "m",
                "--api-key-env",
                "sk-abc.def",
            ),
            r"not an environment variable name",
        ),
        BadInput(
            "rag-csv-is-folder",
            (*rag, "--docs", "{d}/docs.txt", "--csv", "{d}/docdir"),
            r"--csv .* existing folder",
        ),
        BadInput(
            "rag-pickled-model",
            ("rag", "--query", "q", "--docs", "{d}/docs.txt", "--model", "{d}/pickled"),
            r"--model: refusing to load .* --trust-model",
        ),
        BadInput("rag-value", (*rag, "--docs", "{d}/docs.txt", "--value", "vibes"), r"--value"),
        BadInput("ai-missing", (*ai, "{d}/nofeatures"), r"FEATURES_DIR .* does not exist"),
        BadInput("ai-not-features", (*ai, "{d}/docdir"), r"not a saved FeatureData folder"),
        BadInput("ai-scorer", (*ai, "{d}/features", "--scorers", "vibes"), r"unknown \['vibes'\]"),
        BadInput("ai-latent-range", (*ai, "{d}/features", "--latents", "999"), r"out of range"),
        BadInput(
            "ai-both",
            (*ai, "{d}/features", "--latents", "1", "--top", "2"),
            r"--latents and --top are both given",
        ),
        BadInput(
            "ai-simulator",
            (*ai, "{d}/features", "--simulator", "generate"),
            r"--simulator generate asks a language model",
        ),
        BadInput("cot-nothing", ("cot",), r"pass one of --trace FILE and --text"),
        BadInput("cot-missing-trace", ("cot", "--trace", "{d}/nope.txt"), r"does not exist"),
        BadInput(
            "cot-regex",
            ("cot", "--text", "x", "--regex", "(unclosed"),
            r"--regex '\(unclosed' is not a regular expression",
        ),
        BadInput("cot-empty-text", ("cot", "--text", "   "), r"--text is empty"),
        BadInput("faith-no-prompt", ("cot", "faithfulness", "--model", lm), r"no questions"),
        BadInput(
            "faith-tests",
            ("cot", "faithfulness", "--model", lm, "--prompt", "x", "--tests", "vibes"),
            r"unknown \['vibes'\]",
        ),
    ]


def test_bad_input_is_one_line_exit_2_and_nothing_written(files, features, lm_dir, tmp_path):
    import shutil

    folder = tmp_path / "bad"
    shutil.copytree(files, folder)
    shutil.copytree(features, folder / "features")
    for case in _bad(str(lm_dir)):
        check_bad_input(case, folder)
