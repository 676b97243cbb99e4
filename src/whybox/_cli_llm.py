"""The command line's language-model commands: ``whybox rag`` and ``whybox autointerp`` (``whybox
cot`` is in :mod:`whybox._cli_cot`, which shares this module's backend options).

- ``whybox rag --model MODEL_DIR | --endpoint URL --endpoint-model NAME --query Q --docs
  FILE_OR_FOLDER``: which retrieved documents (or sentences) drove the answer
  (:class:`whybox.text.rag.RagAttribution`): a Rich table of the sources ranked by value,
  with standard errors for sampling methods, and with ``--cost-quality`` the table of LLM
  calls, wall time and agreement with exact Shapley per method and budget (arXiv:2507.04480).
- ``whybox autointerp FEATURES_DIR``: explain SAE latents in words and score the words
  (:mod:`whybox.sae.autointerp`) on a saved :class:`~whybox.sae.features.FeatureData`
  folder; offline (token statistics, lexical simulator, MiniLM embedding scorer) unless a
  model or an endpoint is given.
- ``whybox cot --trace FILE | --text "..."``: chain-of-thought monitors (regex patterns, an
  LLM judge; :mod:`whybox.text.cot`), the flagged spans in a table; ``whybox cot
  faithfulness --model MODEL_DIR --prompt ...``: the faithfulness tests of Lanham et al.
  (2023) on the model's own generate.

Backends: ``--model MODEL_DIR`` loads a local causal LM (safetensors only unless
``--trust-model``; :func:`whybox._cli_internals.load_language_model`) as a
:class:`~whybox.llm.local.LocalBackend`; ``--endpoint URL --endpoint-model NAME`` talks to an
OpenAI-compatible server (:class:`~whybox.llm.http.OpenAIBackend`). The API key is read only
from the environment variable named by ``--api-key-env`` (default ``OPENAI_API_KEY``, optional)
by the backend itself: this module never reads, prints or stores it; naming a variable that is
not set is an error before any work.

Bad input is one line on stderr and exit code 2, checked before any model is loaded, and
nothing is written unless everything succeeded (:mod:`whybox.cli`'s rule). A model call that
fails during the work (an endpoint that refuses connections, HTTP errors after the retries) is
one line on stderr and exit code 1. Document texts, traces and model output reach the terminal
as plain text (never Rich markup) and the HTML pages escaped.

References
----------
Cohen-Wang, B., Shah, H., Georgiev, K. and Madry, A. (2024). ContextCite: attributing model
generation to context. NeurIPS.
Nematov, I. et al. (2025). Source attribution in retrieval-augmented generation.
arXiv:2507.04480.
Bills, S. et al. (2023). Language models can explain neurons in language models. OpenAI.
Paulo, G. et al. (2024). Automatically interpreting millions of features in large language
models. arXiv:2410.13928.
Korbak, T. et al. (2025). Chain of Thought Monitorability. arXiv:2507.11473.
Lanham, T. et al. (2023). Measuring Faithfulness in Chain-of-Thought Reasoning.
arXiv:2307.13702.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ._cli_console import console, err_console
from ._cli_inputs import check_output_file, check_output_report
from .errors import InvalidInputError, InvalidParameterError, ModelCallError, WhyboxError

__all__ = ["backend_from_options", "read_documents", "register"]


_DOC_SUFFIXES = (".json",)
_MAX_TEXT_BYTES = 50_000_000


# ---------------------------------------------------------------------- helpers
#: library keywords that error messages name -> the options that set them here
_HINTS = {
    "value=": "--value",
    "max_retries=": "--max-retries",
    "timeout=": "--timeout",
    "budget=": "--budget",
    "granularity=": "--granularity",
    "on_unparseable=": "--unparseable",
}


def _message(exc: Exception) -> str:
    """The error on one line, with the options that set the library keywords it names."""
    text = " ".join(str(exc).split())
    said = [f"{k} is {o}" for k, o in _HINTS.items()
            if re.search(rf"(?<![\w.]){re.escape(k)}", text) and o not in text]  # fmt: skip
    return text + (f" (at the command line: {'; '.join(said)})" if said else "")


def _run(fail: Callable[[Exception], None], work: Callable[[], None], models: bool = True) -> None:
    """Run ``work``; ModelCallError -> one line on stderr and exit 1, any other WhyboxError ->
    ``fail`` (one line, exit 2). Python warnings are off, and with ``models`` transformers'
    logging and progress bars too (so that an error stays one line)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        if models:
            from ._cli_internals import _quiet

            stack.enter_context(_quiet())
        try:
            work()
        except ModelCallError as exc:
            err_console.print("[bold red]error:[/] " + escape(_message(exc)), soft_wrap=True)
            raise typer.Exit(code=1) from None
        except WhyboxError as exc:
            fail(WhyboxError(_message(exc)))


def _plain(text: Any, width: int | None = None) -> Text:
    """User or model text as a Rich Text (never markup), flattened to one line."""
    flat = " ".join(str(text).split())
    if width is not None and len(flat) > width:
        flat = flat[: width - 1] + "…"
    return Text(flat)


def _num(v: Any, digits: int = 4) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    if math.isnan(f):
        return ""
    if digits == 0 and math.isfinite(f) and f == int(f):
        return str(int(f))
    return f"{f:.{max(digits, 1)}f}"


def _read_text(path: Path, option: str) -> str:
    shown = repr(str(path))
    if not path.exists():
        raise InvalidInputError(f"{option} {shown} does not exist; pass an existing file.")
    if path.is_dir():
        raise InvalidInputError(f"{option} {shown} is a folder; pass a text file.")
    if path.stat().st_size > _MAX_TEXT_BYTES:
        raise InvalidInputError(f"{option} {shown} is over 50 MB; pass a smaller file.")
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{option} {shown} is not UTF-8 text (byte {exc.start}); save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise InvalidInputError(f"{option} {shown} cannot be read: {exc.strerror or exc}.") from exc


def read_documents(path: str | os.PathLike[str]) -> list[str]:
    """The documents of ``--docs``: a folder (one document per file, by name, hidden files
    skipped), a ``.json`` file (a list of strings, or of objects with a ``"text"``), or a text
    file (one document per non-empty line).

    Raises
    ------
    InvalidInputError
        A missing path, an empty folder or file, malformed JSON, a document that is not a
        string, empty documents or duplicates.
    """
    from .games.documents import check_documents

    path = Path(path)
    shown = repr(str(path))
    if not path.exists():
        raise InvalidInputError(
            f"--docs {shown} does not exist; pass a text file (one document per line), a "
            ".json list of strings, or a folder (one document per file)."
        )
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            raise InvalidInputError(
                f"--docs folder {shown} holds no files; put one document per file in it."
            )
        docs = [_read_text(f, "--docs file").strip() for f in files]
        for f, d in zip(files, docs, strict=True):
            if not d:
                raise InvalidInputError(f"--docs file {str(f)!r} is empty; remove it.")
    elif path.suffix.lower() in _DOC_SUFFIXES:
        text = _read_text(path, "--docs")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(
                f"--docs {shown} is not valid JSON ({exc}); pass a JSON list of strings."
            ) from exc
        if not isinstance(data, list):
            raise InvalidInputError(
                f"--docs {shown} holds a JSON {type(data).__name__}; pass a JSON list of "
                'strings (or of {"text": ...} objects).'
            )
        docs = [d.get("text") if isinstance(d, dict) else d for d in data]
        for i, d in enumerate(docs):
            if not isinstance(d, str):
                raise InvalidInputError(
                    f"--docs {shown}: entry {i} is a {type(d).__name__}, not a string; pass a "
                    'JSON list of strings (or of {"text": ...} objects).'
                )
    else:
        docs = [ln.strip() for ln in _read_text(path, "--docs").splitlines() if ln.strip()]
        if not docs:
            raise InvalidInputError(f"--docs {shown} is empty; put one document per line.")
    return check_documents(docs)


def backend_from_options(
    model_dir: Path | None,
    endpoint: str | None,
    endpoint_model: str | None,
    api_key_env: str | None,
    *,
    trust_model: bool = False,
    max_retries: int = 3,
    timeout: float = 30.0,
    required: bool = True,
    model_option: str = "--model",
) -> Any:
    """Check the backend options and build the backend (None when neither is given and the
    backend is optional).

    The checks (exactly one of the model and the endpoint, a model name with the endpoint,
    a named key variable that is set) run before anything is loaded; the key itself is read
    only by :class:`~whybox.llm.http.OpenAIBackend`.
    """
    if model_dir is not None and endpoint is not None:
        raise InvalidParameterError(
            f"{model_option} and --endpoint are both given; pass one: a local model folder or "
            "an OpenAI-compatible endpoint."
        )
    if endpoint is None:
        for option, value in (("--endpoint-model", endpoint_model), ("--api-key-env", api_key_env)):
            if value is not None:
                raise InvalidParameterError(f"{option} needs --endpoint URL; pass both.")
        if model_dir is None:
            if required:
                raise InvalidParameterError(
                    f"no language model: pass {model_option} MODEL_DIR (a saved transformers "
                    "causal LM) or --endpoint URL --endpoint-model NAME (an OpenAI-compatible "
                    "server)."
                )
            return None
        return _check_model_dir(model_dir, trust_model, model_option)
    from urllib.parse import urlsplit

    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc:
        raise InvalidParameterError(
            f"--endpoint {endpoint!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8000 "
            "or https://api.openai.com/v1."
        )
    if not endpoint_model:
        raise InvalidParameterError(
            "--endpoint needs --endpoint-model NAME: the served model's name (sent as 'model')."
        )
    if api_key_env is not None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
            raise InvalidParameterError(
                f"--api-key-env {api_key_env!r} is not an environment variable name; pass the "
                "name of the variable that holds the key (e.g. OPENAI_API_KEY), not the key."
            )
        if not os.environ.get(api_key_env):
            raise InvalidParameterError(
                f"--api-key-env names the environment variable {api_key_env}, which is not set "
                f"(or empty); export {api_key_env}=<your key> first, or leave --api-key-env out "
                "for a server that needs no key."
            )
    from .llm.http import OpenAIBackend

    return OpenAIBackend(
        endpoint,
        endpoint_model,
        api_key_env=api_key_env or "OPENAI_API_KEY",
        max_retries=max_retries,
        timeout=timeout,
    )


class _PendingModel:
    """A checked model folder, loaded when the work starts (after every other check)."""

    def __init__(self, folder: Path, trust_model: bool) -> None:
        self.folder, self.trust_model = folder, trust_model

    def load(self) -> Any:
        from ._cli_internals import load_language_model
        from .llm.local import LocalBackend

        model, tokenizer = load_language_model(self.folder, self.trust_model)
        return LocalBackend(model, tokenizer)


def _check_model_dir(folder: Path, trust_model: bool, option: str) -> _PendingModel:
    from ._cli_internals import _check_model_folder

    try:
        _check_model_folder(Path(folder), trust_model)
    except WhyboxError as exc:
        raise type(exc)(f"{option}: {exc}") from exc
    return _PendingModel(Path(folder), trust_model)


def _load(backend: Any) -> Any:
    return backend.load() if isinstance(backend, _PendingModel) else backend


def _progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


# ---------------------------------------------------------------------- rag
def _rag_sources_table(exp: Any) -> Table:
    import numpy as np

    vals = np.asarray(exp.values[0], dtype=float)
    std = None if exp.std is None else np.asarray(exp.std[0], dtype=float)
    texts = list(exp.data[0])
    doc_of = exp.meta.get("source_document", [list(range(len(vals)))])[0]
    order = np.argsort(-vals, kind="stable")
    p = exp.params
    table = Table(title=f"sources ranked by value ({p.get('method_selection', exp.method)})")
    for col, just in (("rank", "right"), ("source", "right"), ("document", "right"),
                      ("value", "right"), ("std", "right"), ("text", "left")):  # fmt: skip
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r, j in enumerate(order, 1):
        table.add_row(
            str(r), str(int(j)), str(int(doc_of[j])), f"{vals[j]:+.4f}",
            "" if std is None else f"{std[j]:.4f}", _plain(texts[j], 70),
        )  # fmt: skip
    return table


def _rag_cost_table(df: Any) -> Table:
    table = Table(title="cost and quality against exact Shapley (arXiv:2507.04480)")
    heads = {"method": "method", "budget": "budget", "llm_calls": "calls",
             "wall_time_s": "time s", "spearman": "Spearman", "spearman_sd": "sd",
             "top_k_overlap": "top-k", "lds": "LDS", "note": "note"}  # fmt: skip
    for c, h in heads.items():
        table.add_column(h, justify="left" if c in ("method", "note") else "right",
                         no_wrap=c == "method")  # fmt: skip
    for _, r in df.iterrows():
        table.add_row(
            str(r["method"]), _num(r["budget"], 0), _num(r["llm_calls"], 0),
            _num(r["wall_time_s"], 3), _num(r["spearman"], 3), _num(r["spearman_sd"], 3),
            _num(r["top_k_overlap"], 2), _num(r.get("lds"), 3), _plain(r.get("note", "")),
        )  # fmt: skip
    return table


def _cost_quality(rag: Any, query: str, docs: list[str], answer: str, exp: Any,
                  methods: list[str], budgets: list[int]) -> Any:  # fmt: skip
    """RagAttribution.cost_quality, one method at a time under a progress bar, the exact
    reference shared (the main explanation's when it was exact)."""
    import numpy as np
    import pandas as pd

    if exp.method == "exact" and exp.params.get("budget") is None:
        ref = exp
    else:
        ref = rag.explain(query, docs, answer, method="exact")
    n = len(ref.values[0])
    rows = [pd.DataFrame([{
        "method": "exact", "budget": 2**n, "llm_calls": ref.params["calls"],
        "wall_time_s": ref.params["time_s"], "spearman": 1.0, "spearman_sd": 0.0,
        "top_k_overlap": 1.0, "lds": np.nan, "note": "reference",
    }])]  # fmt: skip
    todo = [m for m in methods if m != "exact"]
    with _progress() as bar:
        task = bar.add_task("cost-quality", total=len(todo))
        for m in todo:
            rows.append(rag.cost_quality(query, docs, answer, methods=[m], budgets=budgets,
                                         reference=np.asarray(ref.values[0], dtype=float)))  # fmt: skip
            bar.advance(task)
    return pd.concat(rows, ignore_index=True)


def _parse_budgets(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        out = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        out = []
    if not out or any(b < 1 for b in out):
        raise InvalidParameterError(
            f"--budgets {text!r} must be comma-separated positive integers, e.g. 16,64,256."
        )
    return out


def rag_command(
    backend: Any,
    query: str,
    docs_path: Path,
    answer: str | None,
    method: str,
    budget: int | None,
    granularity: str,
    value: str,
    cost_quality: bool,
    budgets: str | None,
    cq_methods: str | None,
    html: Path | None,
    csv: Path | None,
    seed: int,
    *,
    write: Callable[[Path, Any], Any],
) -> None:
    """``whybox rag``: the work (errors raised as WhyboxError); ``backend`` already checked."""
    from .games.documents import GRANULARITIES, split_sentences
    from .text.rag import DEFAULT_BUDGETS, DEFAULT_TABLE_METHODS, MAX_EXACT_SOURCES, RAG_METHODS

    if not query.strip():
        raise InvalidInputError("--query is empty; pass the question the documents answer.")
    if answer is not None and not answer.strip():
        raise InvalidInputError("--answer is empty; pass the answer to explain, or leave it out.")
    if method not in ("auto", *RAG_METHODS):
        raise InvalidParameterError(
            f"--method {method!r} is not a RAG attribution method; choose one of "
            f"{', '.join(['auto', *RAG_METHODS])}."
        )
    if granularity not in GRANULARITIES:
        raise InvalidParameterError(
            f"--granularity {granularity!r}: choose {' or '.join(GRANULARITIES)}."
        )
    if value not in ("logprob", "similarity"):
        raise InvalidParameterError(f"--value {value!r}: choose logprob or similarity.")
    budget_list = _parse_budgets(budgets) or list(DEFAULT_BUDGETS)
    methods = list(DEFAULT_TABLE_METHODS)
    if cq_methods is not None:
        methods = [m.strip() for m in cq_methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in RAG_METHODS]
        if bad or not methods:
            raise InvalidParameterError(
                f"--cost-quality-methods {cq_methods!r}: unknown {bad or 'empty'}; choose from "
                f"{', '.join(RAG_METHODS)}."
            )
    docs = read_documents(docs_path)
    n = len(docs) if granularity == "document" else sum(len(split_sentences(d)) for d in docs)
    if method == "exact" and n > MAX_EXACT_SOURCES:
        raise InvalidParameterError(
            f"--method exact needs all 2**{n} contexts of the {n} sources; it is refused above "
            f"{MAX_EXACT_SOURCES}. Use --method kernel, permutation or contextcite."
        )
    if cost_quality and n > MAX_EXACT_SOURCES:
        raise InvalidParameterError(
            f"--cost-quality compares with exact Shapley values, which {n} sources (over "
            f"{MAX_EXACT_SOURCES}) make too costly; pass fewer documents or leave it out."
        )
    html_file = check_output_report(html, "--html", inputs=[docs_path]) if html else None
    if csv is not None:
        check_output_file(csv, "--csv", example="sources.csv", inputs=[docs_path])
    from .text.rag import RagAttribution

    t0 = time.perf_counter()
    with err_console.status("loading the model"):
        be = _load(backend)
    rag = RagAttribution(be, granularity=granularity, value=value, random_state=seed)
    with err_console.status(f"attributing the answer to {n} sources ({method})"):
        exp = rag.explain(query, docs, answer, method=method, budget=budget)
    table = _cost_quality(rag, query, docs, exp.meta["answer"][0], exp, methods,
                          budget_list) if cost_quality else None  # fmt: skip
    if html_file is not None:
        from .report.rag import rag_report

        rep = rag_report(
            exp, cost_quality=table, title="whybox rag: which sources drove the answer"
        )
        write(html_file, rep.save)
    if csv is not None:
        write(csv, lambda p: _sources_frame(exp).to_csv(p, index=False))
    p = exp.params
    console.print(Text("query: ") + _plain(query))
    generated = " (generated by the model)" if exp.meta["answer_generated"][0] else ""
    console.print(Text("answer: ") + _plain(exp.meta["answer"][0]) + Text(generated))
    console.print(_rag_sources_table(exp))
    extra = f", LDS {p['lds']:.3f}" if p.get("lds") is not None else ""
    console.print(
        f"{p['output']}: all sources {float(exp.predictions[0]):+.4f}, none "
        f"{float(exp.base_values[0]):+.4f}; {p['calls']} LLM calls{extra}",
        markup=False,
    )
    if table is not None:
        console.print(_rag_cost_table(table))
    for path in (html_file, csv):
        if path is not None:
            console.print(f"written: {path}", markup=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)


def _sources_frame(exp: Any) -> Any:
    import numpy as np
    import pandas as pd

    vals = np.asarray(exp.values[0], dtype=float)
    rank = np.empty(len(vals), dtype=int)
    rank[np.argsort(-vals, kind="stable")] = np.arange(1, len(vals) + 1)
    return pd.DataFrame({
        "source": np.arange(len(vals)),
        "document": exp.meta["source_document"][0],
        "value": vals,
        "std": np.nan if exp.std is None else np.asarray(exp.std[0], dtype=float),
        "rank": rank,
        "text": list(exp.data[0]),
    })  # fmt: skip


# ---------------------------------------------------------------------- autointerp
_SCORE_COLUMNS = {
    "simulation": "sim r",
    "detection_balanced_accuracy": "det acc",
    "detection_auroc": "det AUC",
    "fuzzing_balanced_accuracy": "fuzz acc",
    "fuzzing_auroc": "fuzz AUC",
    "embedding_auroc": "emb AUC",
}


def _choose_latents(fd: Any, latents: str | None, top: int | None) -> list[int]:
    import numpy as np

    from ._cli_internals import _resolve, parse_indices

    if latents is not None and top is not None:
        raise InvalidParameterError("--latents and --top are both given; pass one.")
    D = len(fd)
    if latents is not None:
        return _resolve(parse_indices(latents, "--latents"), D, "--latents entry")
    firing = np.asarray(fd.n_firing)
    alive = np.flatnonzero(firing > 0)
    if alive.size == 0:
        raise InvalidInputError(
            "no latent of this FeatureData ever fired on its data: there is nothing to explain."
        )
    order = alive[np.argsort(-firing[alive], kind="stable")]
    return [int(j) for j in order[: top or 10]]


def autointerp_command(
    folder: Path,
    backend: Any,
    latents: str | None,
    top: int | None,
    scorers: str,
    simulator: str | None,
    n_examples: int,
    out: Path | None,
    attach: bool,
    seed: int,
    *,
    write: Callable[[Path, Any], Any],
) -> None:
    """``whybox autointerp``: the work (errors raised as WhyboxError)."""
    from .sae.autointerp import SCORERS, AutointerpResult, explain_features, score_explanations
    from .sae.features import FeatureData, is_feature_folder

    shown = repr(str(folder))
    if not folder.exists():
        raise InvalidInputError(
            f"FEATURES_DIR {shown} does not exist; pass a folder written by "
            "feature_data(...).save(folder) or whybox sae features."
        )
    if not is_feature_folder(folder):
        raise InvalidInputError(
            f"FEATURES_DIR {shown} is not a saved FeatureData folder (no index.json of that "
            "format); write one with whybox sae features or feature_data(...).save(folder)."
        )
    chosen = [s.strip() for s in scorers.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SCORERS]
    if bad or not chosen:
        raise InvalidParameterError(
            f"--scorers {scorers!r}: unknown {bad or 'empty'}; choose from {', '.join(SCORERS)}."
        )
    sims = ("lexical", "embedding", "generate", "logprobs")
    if simulator is not None and simulator not in sims:
        raise InvalidParameterError(f"--simulator {simulator!r}: choose one of {', '.join(sims)}.")
    if simulator in ("generate", "logprobs") and backend is None:
        raise InvalidParameterError(
            f"--simulator {simulator} asks a language model: pass --model or --endpoint, or use "
            "--simulator lexical / embedding (offline)."
        )
    out_file = None
    if out is not None:
        out_file = out / "autointerp.json" if out.is_dir() else out
        check_output_file(out_file, "--out", example="autointerp.json")
    fd = FeatureData.load(folder)
    todo = _choose_latents(fd, latents, top)
    from .sae._autointerp_contexts import as_contexts

    t0 = time.perf_counter()
    with err_console.status("loading the model"):
        be = _load(backend)
    ctx = as_contexts(fd, n_examples, seed)
    rows: list[dict[str, Any]] = []
    prompts: dict[int, str] = {}
    params: dict[str, Any] = {}
    with _progress() as bar:
        task = bar.add_task("explaining and scoring latents", total=len(todo))
        for j in todo:
            ex = explain_features(ctx, [j], backend=be, n_examples=n_examples, random_state=seed)
            sc = score_explanations(ctx, ex, scorers=chosen, backend=be, simulator=simulator,
                                    n_examples=n_examples, random_state=seed)  # fmt: skip
            rows += sc.rows
            prompts.update(sc.prompts)
            params = sc.params
            bar.advance(task)
    params["latents"] = todo
    res = AutointerpResult(rows, prompts, params)
    if out_file is not None:
        write(out_file, res.save)
    if attach:
        res.attach(fd)
        write(folder / "explanations.json", lambda p: _atomic_write(p, json.dumps(fd.explanations)))
        if out_file is None:
            write(folder / "autointerp.json", res.save)
    cols = [c for c in _SCORE_COLUMNS if any(c in r for r in rows)]
    sim = f", {params.get('simulator')} simulator" if "simulation" in chosen else ""
    table = Table(
        title=f"autointerp of {len(rows)} latents ({rows[0]['explainer']} explainer{sim})"
    )
    table.add_column("latent", justify="right")
    table.add_column("firing", justify="right")
    table.add_column("explanation", min_width=24, ratio=1)
    for c in cols:
        table.add_column(_SCORE_COLUMNS[c], justify="right")
    for r in rows:
        j = int(r["latent"])
        table.add_row(
            str(j), str(int(fd.n_firing[j])), _plain(r["explanation"], 80),
            *[_num(r.get(c), 3) for c in cols],
        )  # fmt: skip
    console.print(table)
    if out_file is not None:
        console.print(f"written: {out_file}", markup=False)
    if attach:
        console.print(f"explanations attached to {folder} (explanations.json)", markup=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half a file)."""
    import uuid

    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------- registration
_MODEL_HELP = "A saved transformers causal LM folder (config.json, *.safetensors, tokenizer files)."
_ENDPOINT_HELP = "An OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted): its base URL."
_ENDPOINT_MODEL_HELP = "The served model's name, with --endpoint."
_KEY_HELP = (
    "The NAME of the environment variable holding the endpoint's API key (default "
    "OPENAI_API_KEY, optional). The key itself is never passed on the command line or printed."
)
_RETRIES_HELP = "Retries of a failed endpoint request (with backoff) before giving up."
_HTML_HELP = "Also write an HTML page: a .html file, or a folder (index.html in it)."


def backend(model: Any, endpoint: Any, endpoint_model: Any, key_env: Any, trust: bool,
            retries: int, timeout: float, required: bool = True,
            option: str = "--model") -> Any:  # fmt: skip
    """:func:`backend_from_options` with the commands' positional order (shared by cot)."""
    return backend_from_options(model, endpoint, endpoint_model, key_env, trust_model=trust,
                                max_retries=retries, timeout=timeout, required=required,
                                model_option=option)  # fmt: skip


# the options every language-model command shares (typer reuses an option object per command)
# fmt: off
model_opt = typer.Option(None, "--model", metavar="MODEL_DIR", help=_MODEL_HELP)
endpoint_opt = typer.Option(None, "--endpoint", metavar="URL", help=_ENDPOINT_HELP)
name_opt = typer.Option(None, "--endpoint-model", metavar="NAME", help=_ENDPOINT_MODEL_HELP)
key_opt = typer.Option(None, "--api-key-env", metavar="VAR", help=_KEY_HELP)
retries_opt = typer.Option(3, "--max-retries", min=0, help=_RETRIES_HELP)
timeout_opt = typer.Option(30.0, "--timeout", min=0.001, help="Seconds per endpoint request.")
html_opt = typer.Option(None, "--html", help=_HTML_HELP)
# fmt: on


def register(
    app: typer.Typer,
    *,
    fail: Callable[[Exception], None],
    write: Callable[[Path, Any], Any],
    trust_model: Any,
) -> None:
    """Add ``rag`` and ``autointerp`` to the ``whybox`` app (``cot`` is :mod:`whybox._cli_cot`).

    Parameters
    ----------
    app : typer.Typer
    fail : callable
        ``fail(exc)`` prints a WhyboxError as one line and exits with code 2.
    write : callable
        ``write(path, save)`` creates missing folders and calls ``save(path)``.
    trust_model : typer.Option
        The shared ``--trust-model`` option.
    """

    Opt = typer.Option
    # fmt: off

    @app.command("rag")
    def rag(
        query: str = Opt(..., "--query", help="The question the documents answer."),
        docs: Path = Opt(..., "--docs", help="Documents: a text file (one per line), a .json list "
                       "of strings, or a folder (one document per file)."),
        model: Path | None = model_opt,
        endpoint: str | None = endpoint_opt,
        endpoint_model: str | None = name_opt,
        api_key_env: str | None = key_opt,
        answer: str | None = Opt(None, "--answer", help="The answer to explain (default: the "
                               "model's own greedy answer)."),
        method: str = Opt("auto", "--method", help="auto, exact, leave_one_out, permutation, "
                        "kernel, kernel_small, banzhaf, lime or contextcite."),
        budget: int | None = Opt(None, "--budget", min=1, help="Contexts a sampling method evaluates."),
        granularity: str = Opt("document", "--granularity", help="Sources: document or sentence."),
        value: str = Opt("logprob", "--value", help="logprob (the answer's log-probability) or "
                         "similarity (TF-IDF similarity of regenerated answers; for endpoints "
                         "without logprobs)."),
        cost_quality: bool = Opt(False, "--cost-quality", help="Also tabulate LLM calls, time and "
                               "agreement with exact Shapley for each method and budget."),
        budgets: str | None = Opt(None, "--budgets", help="Budgets of the cost-quality table "
                                "(default 16,32,...,512)."),
        cq_methods: str | None = Opt(None, "--cost-quality-methods", help="Methods of the "
                                   "cost-quality table (comma-separated)."),
        html: Path | None = html_opt,
        csv: Path | None = Opt(None, "--csv", help="Also write the sources' values as CSV."),
        seed: int = Opt(0, "--seed", min=0, help="Random seed of sampling methods."),
        max_retries: int = retries_opt,
        timeout: float = timeout_opt,
        trust: bool = trust_model,
    ) -> None:
        """Which retrieved documents drove the answer: RAG source attribution.

        The documents are players of a game whose value is the log-probability of the answer
        given the query and the documents kept (in their order); the table ranks them by
        their Shapley (or other) value.
        """

        def work() -> None:
            be = backend(model, endpoint, endpoint_model, api_key_env, trust, max_retries, timeout)
            rag_command(be, query, docs, answer, method, budget, granularity, value, cost_quality,
                        budgets, cq_methods, html, csv, seed, write=write)

        _run(fail, work)

    @app.command("autointerp")
    def autointerp(
        features_dir: Path = typer.Argument(..., metavar="FEATURES_DIR", help="A saved "
                                            "FeatureData folder (whybox sae features)."),
        latents: str | None = Opt(None, "--latents", help="Latents to explain: 0,5,9 or 2:6."),
        top: int | None = Opt(None, "--top", min=1, help="Explain the N latents that fire most "
                            "often (default 10)."),
        model: Path | None = Opt(None, "--model", metavar="MODEL_DIR", help=_MODEL_HELP
                               + " Default: offline (no language model)."),
        endpoint: str | None = endpoint_opt,
        endpoint_model: str | None = name_opt,
        api_key_env: str | None = key_opt,
        scorers: str = Opt("simulation,detection,fuzzing,embedding", "--scorers", help="Scorers: "
                         "simulation, detection, fuzzing, embedding (comma-separated)."),
        simulator: str | None = Opt(None, "--simulator", help="lexical or embedding (offline), "
                                  "generate or logprobs (with a model). Default lexical offline, "
                                  "generate with a model."),
        n_examples: int = Opt(10, "--n-examples", min=1, help="Top contexts shown to the explainer."),
        out: Path | None = Opt(None, "--out", help="Write the results as JSON (a file, or a folder: "
                             "autointerp.json)."),
        attach: bool = Opt(False, "--attach", help="Attach the explanations to FEATURES_DIR's "
                         "feature pages (explanations.json, and autointerp.json unless --out)."),
        seed: int = Opt(0, "--seed", min=0, help="Random seed."),
        max_retries: int = retries_opt,
        timeout: float = timeout_opt,
        trust: bool = trust_model,
    ) -> None:
        """Explain SAE latents in words and score the words on held-out contexts.

        Offline by default: explanations from the tokens enriched where a latent fires, scored
        by a lexical simulator, detection, fuzzing and the MiniLM embedding scorer.
        """

        def work() -> None:
            be = backend(model, endpoint, endpoint_model, api_key_env, trust, max_retries, timeout,
                         required=False)
            autointerp_command(features_dir, be, latents, top, scorers, simulator, n_examples,
                               out, attach, seed, write=write)

        _run(fail, work)

    # fmt: on
