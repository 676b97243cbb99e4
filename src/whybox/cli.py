"""The ``whybox`` command line: ``quickstart``, ``explain``, ``evaluate`` and ``report``.

Every problem with the command line's input (a missing, empty or malformed file, an unusable
output path, a column mismatch) is one line on stderr naming the problem and what to do, with
exit code 2, and nothing is written: input files are read and output paths checked
(:mod:`whybox._cli_inputs`) before any work, and outputs are written only once all of it has
succeeded. Missing folders on the way to an output are created then (``mkdir -p``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from . import __version__
from ._cli_console import console, err_console
from ._cli_cot import register as _register_cot
from ._cli_inputs import (
    PICKLE_SUFFIXES,
    align_categoricals,
    check_output_file,
    check_output_report,
    explained_columns,
    load_data,
    load_explanation,
    load_model,
    make_parents,
    match_columns,
    nan_option,
    parse_target,
)
from ._cli_internals import register as _register_internals
from ._cli_llm import register as _register_llm
from ._cli_sae import register as _register_sae
from ._cli_serve import register as _register_serve
from ._cli_text import register as _register_text
from .errors import InvalidParameterError, MissingDependencyError, WhyboxError

__all__ = ["PICKLE_SUFFIXES", "app", "load_data", "load_model", "main"]

app = typer.Typer(
    name="whybox",
    help="whybox: why did the model do that? Explain models from the command line.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"whybox {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """whybox: one library and one result type for explaining any model."""


def _progress(description: str):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


class _ProgressAfter:
    """A Rich progress bar that appears only once the work has run for over a second."""

    def __init__(self, description: str, delay: float = 1.0) -> None:
        self.description = description
        self.delay = delay
        self.start = time.perf_counter()
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None and time.perf_counter() - self.start > self.delay and done < total:
            self.bar = _progress(self.description)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total)
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


#: the library's keywords and the command-line options that set them
CLI_OPTIONS = {
    "background": "--background FILE",
    "link": "--link",
    "target": "--target",
    "method": "--method",
    "allow_nan": "--allow-nan",
    "n_jobs": "--n-jobs",
    "metrics": "--metrics",
}


def _cli_hint(message: str, options: tuple[str, ...]) -> str:
    """Say which option sets each library keyword that ``message`` names (``background=``)."""
    said = [
        f"{key}= is {CLI_OPTIONS[key]}"
        for key in options
        if re.search(rf"(?<![\w.]){key}=", message) and CLI_OPTIONS[key] not in message
    ]
    return f" (at the command line: {'; '.join(said)})" if said else ""


def _fail(exc: Exception, options: tuple[str, ...] = ()) -> None:
    """Print ``exc`` as one line on stderr, verbatim (no Rich markup), and exit with code 2."""
    message = " ".join(str(exc).split()) + _cli_hint(str(exc), options)
    err_console.print("[bold red]error:[/] " + escape(message), markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def _write(path: Path, write: Any) -> Any:
    """Create the missing folders above ``path`` and write it; an OSError is one line too."""
    try:
        make_parents(path)
        return write(path)
    except OSError as exc:
        raise InvalidParameterError(
            f"cannot write {str(path)!r}: {exc.strerror or exc}; choose another path."
        ) from exc


# ---------------------------------------------------------------------- quickstart
@app.command()
def quickstart(
    out: Path = typer.Option(
        Path("whybox-report"),
        "--out",
        help="Folder for index.html (missing folders are created), or a .html file.",
    ),
    n: int = typer.Option(5000, "--n", min=200, help="Applicants to generate."),
    explain_rows: int = typer.Option(
        50, "--explain-rows", min=3, help="Held-out applicants to explain."
    ),
    background_rows: int = typer.Option(
        50, "--background-rows", min=1, help="Training rows used as the background."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed of data, model and sampling."),
    vision: bool = typer.Option(
        False,
        "--vision",
        help="Instead: compare IG, SmoothGrad, Grad-CAM and image KernelSHAP on the digits CNN.",
    ),
    images: int = typer.Option(
        4, "--images", min=1, max=16, help="With --vision: test images to explain."
    ),
) -> None:
    """Train a credit model on synthetic data, explain it, and write an HTML report.

    With --vision: load (or train, seconds on a CPU) the whybox.zoo.digits_cnn classifier,
    explain a few test digits with Integrated Gradients, SmoothGrad, Grad-CAM and image
    KernelSHAP, and write OUT/index.html with the methods side by side and their deletion /
    insertion AUC and completeness gaps.

    Generates whybox.zoo.credit data (with a known ground-truth logit), trains a
    HistGradientBoostingClassifier, explains held-out applicants' log-odds of default with
    exact interventional Shapley values (and LIME, to compare), and writes
    OUT/index.html: data summary, global importance with intervals, beeswarm and heatmap,
    dependence, PDP/ICE and ALE plots, three denied applicants with their principal reasons
    and counterfactual recourse, a comparison with the truth, explanation quality
    (faithfulness, stability, agreement) and the limitations found.
    """
    try:
        out = check_output_report(out, "--out")
        if vision:
            _quickstart_vision(out, images, seed)
        else:
            with _one_openmp_thread():
                _quickstart(out, n, explain_rows, background_rows, seed)
    except WhyboxError as exc:
        _fail(exc)


def _quickstart_vision(out: Path, n_images: int, seed: int) -> None:
    from .report.vision import VISION_METHODS, vision_report
    from .zoo import digits_cnn

    t0 = time.perf_counter()
    with console.status("Loading the digits CNN (trained on first use)"):
        model, data = digits_cnn(random_state=seed)
    x = data.X_test[:n_images]
    with console.status("Explaining the digits with four methods and scoring them"):
        rep = vision_report(
            model,
            x,
            labels=data.y_test[:n_images].numpy(),
            class_names=data.target_names,
            random_state=seed,
            subtitle=(
                f"whybox.zoo.digits_cnn (test accuracy {data.test_accuracy:.1%}) on "
                f"{x.shape[0]} held-out 8x8 digits; each method explains the logit of the "
                "predicted digit."
            ),
        )
    path = _write(out, rep.save)
    table = Table(title="whybox quickstart --vision")
    for col in rep.sections[0]["table"]["columns"]:
        table.add_column(str(col))
    for row in rep.sections[0]["table"]["rows"]:
        table.add_row(*[str(c) for c in row])
    console.print(table)
    console.print(f"methods: {', '.join(VISION_METHODS.values())}")
    console.print(f"report: {path}  ({time.perf_counter() - t0:.1f} s)")


def _one_openmp_thread() -> Any:
    """Run OpenMP code (the gradient-boosting model) on one thread.

    The quickstart calls its model thousands of times on small batches; there, starting an
    OpenMP team costs more than it saves, and on a busy machine far more (measured: 6x less
    CPU on 20 calls of 300 rows).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="openmp")


CREDIT_PHRASES = {
    "income": "Income insufficient for the amount of credit requested",
    "debt_to_income": "Debt-to-income ratio ({value}) too high",
    "age": "Age of applicant ({value}) associated with higher risk in the data",
    "months_employed": "Length of employment ({value} months) too short",
    "late_payments": "Number of late payments ({value}) in the last two years",
    "open_credit_lines": "Too many open credit lines ({value})",
    "credit_utilization": "Proportion of revolving credit used ({value}) too high",
    "loan_amount": "Amount of credit requested ({value}) too large",
    "loan_purpose": "Purpose of loan ({value}) associated with higher risk",
}


#: LIME samples per row (lime's default num_samples) of the quickstart's comparison method
QUICKSTART_LIME_BUDGET = 5000
#: explained rows scored by the quality metrics (and explained with LIME to compare)
QUICKSTART_QUALITY_ROWS = 20
#: what the quickstart's applicants cannot change (age) or only increase
QUICKSTART_RECOURSE = {
    "immutable": ["age", "late_payments"],
    "monotone": {"months_employed": "increase"},
    "time_budget": 1.0,
}


def _quickstart(out: Path, n: int, explain_rows: int, background_rows: int, seed: int) -> None:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    from .agnostic.lime import Lime
    from .agnostic.shapley import ExactShap
    from .recourse.reasons import reason_codes
    from .report.builder import local_section, report
    from .report.sections import recourse_section
    from .zoo import credit, credit_true_shap

    t0 = time.perf_counter()
    data = credit(n=n, random_state=seed)
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=0.25, random_state=seed, stratify=data.y
    )
    with console.status("Training a HistGradientBoostingClassifier"):
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, random_state=seed
        ).fit(X_train, y_train)
    background = X_train.sample(n=min(background_rows, len(X_train)), random_state=seed)
    explained = X_test.iloc[: min(explain_rows, len(X_test))]
    bar = _ProgressAfter("Explaining applicants")
    try:
        exp = ExactShap(
            model, background=background, max_background=len(background), random_state=seed
        ).explain(explained, target=1, link="logit", progress=bar)
    finally:
        bar.close()

    lime_background = X_train.sample(n=min(1000, len(X_train)), random_state=seed)

    def lime_fn(X: Any, random_state: int = seed) -> Any:
        return Lime(model, lime_background, random_state=random_state).explain(
            X, target=1, link="logit", budget=QUICKSTART_LIME_BUDGET
        )

    with console.status("Explaining again with LIME, to compare"):
        lime = lime_fn(explained.iloc[:QUICKSTART_QUALITY_ROWS])
    truth = credit_true_shap(explained, background)
    p_default = 1.0 / (1.0 + np.exp(-exp.predictions))
    denied = np.flatnonzero(p_default >= 0.5)
    if denied.size < 3:  # fall back to the riskiest applicants
        denied = np.argsort(-p_default, kind="stable")[:3]
    chosen = [int(i) for i in denied[np.argsort(-p_default[denied], kind="stable")][:3]]
    reasons = reason_codes(exp, chosen, k=4, adverse="positive", phrases=CREDIT_PHRASES)

    with console.status("Measuring the explanation and writing the report"):
        rep = report(
            exp,
            model=model,
            X=X_test,
            y=y_test,
            X_train=X_train,
            rows=[],
            truth=truth,
            background=background,
            compare=lime,
            explain_fn=lime_fn,
            quality_rows=QUICKSTART_QUALITY_ROWS,
            random_state=seed,
            title="whybox quickstart: why was this applicant denied?",
            subtitle=(
                f"HistGradientBoostingClassifier on {len(X_train):,} synthetic credit "
                f"applications; {exp.n_rows} held-out applicants explained with exact "
                "interventional Shapley values of the log-odds of default."
            ),
        )
        labels = exp.row_labels
        headings = [f"Applicant {labels[i]}" for i in chosen]
        local = local_section(
            exp,
            chosen,
            reasons=reasons,
            title="Denied applicants and their principal reasons",
            lead=(
                "Applicants whose predicted probability of default is at least 50% are denied. "
                "Each waterfall starts from the average log-odds over the background and adds "
                "each feature's contribution; the reasons are the features that pushed the "
                "applicant most toward denial."
            ),
            headings=headings,
            summaries=[
                f"Predicted probability of default {p_default[i]:.1%} (log-odds "
                f"{exp.predictions[i]:+.2f} against a background average of "
                f"{exp.base_values[i]:+.2f}); the true probability in the generating process "
                f"is {1 / (1 + np.exp(-data.true_logit(explained.iloc[[i]])[0])):.1%}."
                for i in chosen
            ],
        )
        ids = [sec["id"] for sec in rep.sections]
        rep.insert_after("effects" if "effects" in ids else "importance", local)
        recourse = recourse_section(
            exp,
            chosen,
            model=model,
            X_train=X_train,
            options=dict(QUICKSTART_RECOURSE, random_state=seed),
            headings=headings,
        )
        if recourse is not None:
            rep.insert_after("local", recourse)
    path = _write(out, rep.save)
    elapsed = time.perf_counter() - t0

    acc = rep.sections[0]["cards"]
    table = Table(title="whybox quickstart", show_header=False)
    for k, v in acc:
        table.add_row(str(k), str(v))
    top = exp.top(3)
    table.add_row("top features", ", ".join(top.index))
    gap = float(np.abs(exp.completeness_gap()).max())
    table.add_row("largest completeness gap", f"{gap:.1e}")
    table.add_row("report", str(path))
    table.add_row("time", f"{elapsed:.1f} s")
    console.print(table)


# ---------------------------------------------------------------------- explain
#: the --trust-model option shared by every command that loads a model file
_TRUST_MODEL = typer.Option(
    False,
    "--trust-model",
    help="Allow loading pickle/joblib model files. Unpickling runs code: only for files you trust.",
)


#: seconds ``--scheduler`` waits to connect to the Dask scheduler
SCHEDULER_TIMEOUT = 10


def _connect_scheduler(address: str, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address``; clear errors."""
    timeout = SCHEDULER_TIMEOUT if timeout is None else timeout
    try:
        from distributed import Client
    except ImportError as exc:
        raise MissingDependencyError("distributed", "dask", "--scheduler") from exc
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    # The half-made Client sits in a reference cycle; collected at interpreter exit its
    # clean-up fails noisily (its event loop is gone), so collect it now.
    import gc

    gc.collect()
    raise InvalidParameterError(
        f"could not connect to the Dask scheduler at --scheduler {address!r} within "
        f"{timeout:g} s ({reason}). Pass the address the scheduler prints at start-up, e.g. "
        "tcp://10.0.0.5:8786, and check that it is running and reachable from here."
    )


#: the --link option of explain (evaluate's defaults to the explanation's own)
_LINK_HELP = (
    "Output scale. identity (default): a classifier's class probability (its decision "
    "function if it has no probabilities), a regressor's prediction. logit: the log-odds of "
    "the class probability. TreeSHAP explains a boosted classifier (XGBoost, LightGBM) exactly "
    "and fast on the log-odds (--link logit); its probability is not additive over the trees "
    "and needs --background."
)
_TARGET_HELP = (
    "Output(s) to explain: a class label or index (a label is matched first), a,b for several, "
    "or all. Default: the positive class of a binary classifier, every class of a multiclass "
    "one, a regressor's prediction."
)
_ALLOW_NAN_HELP = (
    "Accept missing values in the rows, for models that handle them (XGBoost, LightGBM, "
    "HistGradientBoosting)."
)


@app.command()
def explain(
    model_path: Path = typer.Argument(
        ..., metavar="MODEL", help="XGBoost .json/.ubj, LightGBM .txt, or a pickle/joblib file."
    ),
    data_path: Path = typer.Argument(..., metavar="DATA", help="Rows to explain: CSV or Parquet."),
    method: str = typer.Option("auto", "--method", "-m", help="Method name, or auto."),
    target: str | None = typer.Option(None, "--target", "-t", help=_TARGET_HELP),
    link: str = typer.Option("identity", "--link", help=_LINK_HELP),
    background: Path | None = typer.Option(
        None,
        "--background",
        "-b",
        help="Rows that stand for the data (CSV/Parquet), e.g. a sample of the training rows: "
        "what an absent feature is replaced with, used whole. Every method needs it except "
        "TreeSHAP on a tree model's raw output; the explained rows never stand in for it.",
    ),
    out: Path = typer.Option(
        Path("explanation.whybox"),
        "--out",
        "-o",
        help="Output file: .whybox (lossless, no pickle) or .csv (values table). Replaced if "
        "it exists; missing folders are created.",
    ),
    report_dir: Path | None = typer.Option(
        None,
        "--report",
        help="Also write an HTML report: a folder (index.html in it; missing folders are "
        "created) or a .html file.",
    ),
    trust_model: bool = _TRUST_MODEL,
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed."),
    allow_nan: bool = typer.Option(False, "--allow-nan", help=_ALLOW_NAN_HELP),
    n_jobs: int | None = typer.Option(
        None,
        "--n-jobs",
        "-j",
        help="Explain rows in N local worker processes (-1: all cores). Results are identical "
        "to a serial run.",
    ),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Run on an existing Dask cluster: the scheduler's address, e.g. "
        "tcp://10.0.0.5:8786 (needs "
        + escape("whybox[dask]")
        + " here and whybox on the workers). Results are identical to a serial run.",
    ),
) -> None:
    """Explain MODEL's predictions on the rows of DATA and save the Explanation.

    Nothing is written unless everything succeeds; a bad file or path is one line and exit
    code 2.
    """
    client = None
    try:
        from .api import explain as wb_explain

        if scheduler is not None and n_jobs is not None:
            raise InvalidParameterError(
                "--scheduler and --n-jobs choose different executors; pass one of them "
                "(on a Dask cluster, the cluster's workers set the parallelism)."
            )
        inputs = (model_path, data_path, background)
        check_output_file(out, "--out", example="explanation.whybox", inputs=inputs)
        report_file = None
        if report_dir is not None:
            report_file = check_output_report(report_dir, "--report", inputs=inputs)
            if report_file.resolve() == out.resolve():
                raise InvalidParameterError(
                    f"--out and --report both name {str(out)!r}; give them different paths."
                )
        model = load_model(model_path, trust_model)
        X = align_categoricals(model, load_data(data_path))
        bg = None
        if background is not None:
            bg = align_categoricals(model, load_data(background, "background file"))
        parallel: dict[str, Any] = {}
        if n_jobs is not None:
            parallel = {"n_jobs": n_jobs, "backend": "processes"}
        if scheduler is not None:
            client = _connect_scheduler(scheduler)
            parallel = {"backend": "dask", "client": client}
        bar = _ProgressAfter("Explaining rows")
        try:
            exp = wb_explain(
                model,
                X,
                method,
                background=bg,
                target=parse_target(target),
                link=link,
                random_state=seed,
                allow_nan=allow_nan,
                progress=bar,
                **parallel,
            )
        finally:
            bar.close()
        rep = None
        if report_file is not None:
            from .report import report

            rep = report(exp, title=f"whybox: {model_path.name}")
        if out.suffix.lower() == ".csv":
            from .explanation import _atomic_write

            payload = exp.to_frame().to_csv().encode("utf-8")
            _write(out, lambda p: _atomic_write(p, payload))
        else:
            _write(out, exp.save)
        if rep is not None:
            rpath = _write(report_file, rep.save)
            console.print(f"report written to {rpath}")
    except WhyboxError as exc:
        _fail(exc, ("background", "link", "target", "method", "allow_nan"))
    finally:
        if client is not None:
            client.close()
    table = Table(title=escape(f"{exp.method}: {exp.params.get('output', '')}"))
    table.add_column("feature")
    table.add_column("mean |value|", justify="right")
    top = exp.top(min(10, len(exp.feature_names)))
    for name, val in top.items():
        table.add_row(escape(str(name)), f"{val:.4g}")
    console.print(table)
    console.print(f"{exp.n_rows} rows explained; saved to {escape(str(out))}")


# ---------------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    explanation_path: Path = typer.Argument(
        ..., metavar="EXPLANATION", help="A saved explanation (.whybox file)."
    ),
    model_path: Path = typer.Argument(
        ..., metavar="MODEL", help="XGBoost .json/.ubj, LightGBM .txt, or a pickle/joblib file."
    ),
    data_path: Path | None = typer.Argument(
        None,
        metavar="[DATA]",
        help="The explained rows (CSV or Parquet), columns matched by name; default: the rows "
        "saved with the explanation.",
    ),
    metric_names: str = typer.Option(
        "deletion,insertion,faithfulness_correlation,infidelity",
        "--metrics",
        help="Comma-separated metrics: deletion, insertion, faithfulness_correlation, infidelity.",
    ),
    background: Path | None = typer.Option(
        None,
        "--background",
        "-b",
        help="Rows that stand in for removed features (CSV/Parquet); default: DATA itself.",
    ),
    target: str | None = typer.Option(
        None, "--target", "-t", help="Output to score; default: the one explained."
    ),
    link: str | None = typer.Option(
        None, "--link", help="identity or logit; default: the explanation's own."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Also write the table as CSV (replaced if it exists; missing folders are created).",
    ),
    trust_model: bool = _TRUST_MODEL,
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed of the sampled metrics."),
    allow_nan: bool = typer.Option(False, "--allow-nan", help=_ALLOW_NAN_HELP),
) -> None:
    """Score a saved explanation of MODEL with explanation-quality metrics."""
    try:
        from .explanation import _atomic_write
        from .metrics import evaluate as wb_evaluate

        inputs = (explanation_path, model_path, data_path, background)
        if out is not None:
            check_output_file(out, "--out", example="quality.csv", inputs=inputs)
        nan = nan_option(wb_evaluate, allow_nan, "wb.evaluate")
        exp = load_explanation(explanation_path)
        model = load_model(model_path, trust_model)
        X = None
        if data_path is not None:
            X = load_data(data_path)
            columns = explained_columns(exp)
            if columns is not None:
                X = match_columns(X, columns, what="data file", path=data_path)
            X = align_categoricals(model, X)
        if X is None and exp.data is None:
            raise InvalidParameterError(
                f"{str(explanation_path)!r} holds no data rows; pass the explained rows as DATA."
            )
        bg = None
        if background is not None:
            bg = load_data(background, "background file")
            columns = explained_columns(exp)
            if columns is not None:
                bg = match_columns(bg, columns, what="background file", path=background)
            bg = align_categoricals(model, bg)
        names = [m.strip() for m in metric_names.split(",") if m.strip()]
        table = wb_evaluate(
            exp,
            model,
            X,
            metrics=names,
            background=bg,
            target=parse_target(target),
            link=link,
            random_state=seed,
            **nan,
        )
        if out is not None:
            payload = table.to_csv().encode("utf-8")
            _write(out, lambda p: _atomic_write(p, payload))
    except WhyboxError as exc:
        _fail(exc, ("background", "link", "target", "allow_nan", "metrics"))
    view = Table(
        title=escape(f"explanation quality: {exp.method} ({exp.params.get('output', '')})")
    )
    view.add_column("metric", no_wrap=True)
    for col in ("mean", "std"):
        view.add_column(col, justify="right", no_wrap=True)
    view.add_column("n", justify="right")
    view.add_column("better")
    view.add_column("reading", overflow="fold")
    for name, row in table.iterrows():
        view.add_row(
            str(name),
            f"{row['mean']:.4g}",
            f"{row['std']:.2g}",
            str(row["n"]),
            "higher" if row["higher_is_better"] else "lower",
            escape(str(row["reading"])),
        )
    console.print(view)
    if out is not None:
        console.print(f"table written to {escape(str(out))}")


# ---------------------------------------------------------------------- report
def _names(text: str | None) -> list[str]:
    return [] if not text else [t.strip() for t in text.split(",") if t.strip()]


@app.command("report")
def report_command(
    explanation_path: Path = typer.Argument(
        ..., metavar="EXPLANATION", help="A saved explanation (.whybox file) with its rows."
    ),
    model_path: Path = typer.Argument(
        ..., metavar="MODEL", help="XGBoost .json/.ubj, LightGBM .txt, or a pickle/joblib file."
    ),
    data_path: Path = typer.Argument(
        ...,
        metavar="DATA",
        help="Data the model is described on (CSV or Parquet): held-out rows with every feature "
        "of the explanation (matched by name), optionally with the outcome as --label column.",
    ),
    out: Path = typer.Option(
        Path("whybox-report"),
        "--out",
        "-o",
        help="Folder (index.html in it; missing folders are created) or .html file.",
    ),
    label: str | None = typer.Option(
        None,
        "--label",
        "-y",
        help="Column of DATA (and of --train) holding the outcome (scores the model); not a "
        "feature.",
    ),
    train: Path | None = typer.Option(
        None,
        "--train",
        help="Training rows (CSV/Parquet): the range check and the counterfactual search space; "
        "default: DATA.",
    ),
    rows: str | None = typer.Option(
        None, "--rows", help="Explained rows to show locally, e.g. 0,3,7 (default: first 3)."
    ),
    recourse: bool = typer.Option(
        False, "--recourse", help="Search counterfactual recourse for the rows shown."
    ),
    immutable: str | None = typer.Option(
        None, "--immutable", help="With --recourse: features that may not change, e.g. age,sex."
    ),
    title: str = typer.Option("whybox report", "--title", help="Title of the page."),
    trust_model: bool = _TRUST_MODEL,
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed of sampled parts."),
    allow_nan: bool = typer.Option(False, "--allow-nan", help=_ALLOW_NAN_HELP),
) -> None:
    """Write the full HTML report of a saved explanation of MODEL, described on DATA."""
    try:
        from .report import report as wb_report

        inputs = (explanation_path, model_path, data_path, train)
        target_file = check_output_report(out, "--out", inputs=inputs)
        chosen = None
        if rows is not None:
            try:
                chosen = [int(r) for r in _names(rows)]
            except ValueError as exc:
                raise InvalidParameterError(
                    f"--rows {rows!r} must be comma-separated row positions, e.g. 0,3,7."
                ) from exc
        nan = nan_option(wb_report, allow_nan, "wb.report")
        exp = load_explanation(explanation_path)
        model = load_model(model_path, trust_model)
        if exp.data is None:
            raise InvalidParameterError(
                f"{str(explanation_path)!r} holds no data rows, and the report shows each "
                "feature's values; save the explanation of a DataFrame or array with its data."
            )
        columns = explained_columns(exp)
        X = load_data(data_path)
        y = None
        if label is not None:
            if label not in X.columns:
                raise InvalidParameterError(
                    f"--label {label!r} is not a column of {str(data_path)!r}; its columns are "
                    f"{[str(c) for c in X.columns]}."
                )
            y = X.pop(label)
        if columns is not None:
            X = match_columns(X, columns, what="data file", path=data_path, label=label)
        X = align_categoricals(model, X)
        X_train = None
        if train is not None:
            X_train = load_data(train, "--train file")
            if label is not None and label in X_train.columns:
                X_train = X_train.drop(columns=[label])
            if columns is not None:
                X_train = match_columns(
                    X_train, columns, what="--train file", path=train, label=label
                )
            X_train = align_categoricals(model, X_train)
        has_sklearn_api = hasattr(model, "fit") and hasattr(model, "predict")
        if y is not None and not has_sklearn_api:
            err_console.print(
                "note: --label is ignored for native boosters (no scikit-learn predict to score).",
                markup=False,
            )
            y = None
        options = {"immutable": _names(immutable), "random_state": seed} if recourse else None
        rep = wb_report(
            exp,
            model=model,
            X=X,
            y=y,
            X_train=X_train,
            rows=chosen,
            recourse=options,
            title=title,
            random_state=seed,
            **nan,
        )
        path = _write(target_file, rep.save)
    except WhyboxError as exc:
        _fail(exc, ("allow_nan",))
    console.print(f"report written to {escape(str(path))}")
    console.print("sections: " + ", ".join(escape(str(sec["title"])) for sec in rep.sections))


_register_internals(app, fail=_fail, write=_write, trust_model=_TRUST_MODEL)
_register_text(app, fail=_fail, write=_write)
_register_sae(app, fail=_fail, write=_write, trust_model=_TRUST_MODEL)
_register_serve(app, fail=_fail)
_register_llm(app, fail=_fail, write=_write, trust_model=_TRUST_MODEL)
_register_cot(app, fail=_fail, write=_write, trust_model=_TRUST_MODEL)


def main() -> None:
    """Entry point of the ``whybox`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
