"""The command line's chain-of-thought commands: ``whybox cot`` and ``whybox cot faithfulness``.

- ``whybox cot --trace FILE | --text "..."``: chain-of-thought monitors (regex patterns, an
  LLM judge; :mod:`whybox.text.cot`), the flagged spans in a table;
- ``whybox cot faithfulness --model MODEL_DIR --prompt ...``: Lanham et al.'s (2023) tests on
  the model's own generations (early answering, added mistakes, paraphrase, filler).

Models and endpoints are chosen, and bad input reported, as in :mod:`whybox._cli_llm`, whose
helpers this module uses.

References
----------
Korbak, T. et al. (2025). Chain of Thought Monitorability. arXiv:2507.11473.
Lanham, T. et al. (2023). Measuring Faithfulness in Chain-of-Thought Reasoning.
arXiv:2307.13702.
"""

from __future__ import annotations

import html as _html
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from ._cli_inputs import check_output_report
from ._cli_llm import (
    _ENDPOINT_HELP,
    _MODEL_HELP,
    _atomic_write,
    _load,
    _num,
    _plain,
    _progress,
    _read_text,
    _run,
    backend,
    console,
    endpoint_opt,
    err_console,
    html_opt,
    key_opt,
    model_opt,
    name_opt,
    retries_opt,
    timeout_opt,
)
from .errors import InvalidInputError, InvalidParameterError

__all__ = ["register"]


# ---------------------------------------------------------------------- cot
def _read_traces(trace_file: Path | None, text: str | None) -> list[str]:
    if (trace_file is None) == (text is None):
        raise InvalidParameterError(
            'pass one of --trace FILE and --text "..." (the reasoning to monitor), or run '
            "whybox cot faithfulness."
        )
    if text is not None:
        traces = [text]
    else:
        raw = _read_text(trace_file, "--trace")  # type: ignore[arg-type]
        traces = [raw]
        if trace_file.suffix.lower() == ".json":  # type: ignore[union-attr]
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise InvalidInputError(
                    f"--trace {str(trace_file)!r} is not valid JSON ({exc}); pass a JSON list of "
                    "traces, or a plain text file (one trace)."
                ) from exc
            traces = data if isinstance(data, list) else [data]
            if not all(isinstance(t, str) for t in traces):
                raise InvalidInputError(
                    f"--trace {str(trace_file)!r} must hold a JSON list of strings (traces)."
                )
    for i, t in enumerate(traces):
        if not t.strip():
            where = "--text" if text is not None else f"trace {i} of --trace"
            raise InvalidInputError(f"{where} is empty; pass the chain-of-thought text.")
    return traces


def _monitors(regex: list[str] | None, judge: Any, rubric: str | None, threshold: float,
              rule: str, unparseable: str) -> tuple[Any, str]:  # fmt: skip
    from .text.cot import MISBEHAVIOUR_PATTERNS, JudgeMonitor, RegexMonitor

    if not 0.0 <= threshold <= 1.0:
        raise InvalidParameterError(f"--threshold {threshold} must be in [0, 1].")
    if rule not in ("any", "all"):
        raise InvalidParameterError(f"--rule {rule!r}: choose any or all.")
    if unparseable not in ("raise", "flag"):
        raise InvalidParameterError(f"--unparseable {unparseable!r}: choose raise or flag.")
    patterns: Any = list(regex or [])
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise InvalidParameterError(
                f"--regex {p!r} is not a regular expression ({exc}); fix it or quote it."
            ) from exc
    described = "regex patterns given"
    if not patterns and judge is None:
        patterns, described = dict(MISBEHAVIOUR_PATTERNS), "built-in misbehaviour patterns"
    parts: list[Any] = [RegexMonitor(patterns)] if patterns else []
    if judge is not None:
        kw = {"rubric": rubric} if rubric else {}
        kw["on_unparseable"] = unparseable
        parts.append((JudgeMonitor, kw, threshold))  # built once the model is loaded
        described += " + LLM judge" if patterns else "LLM judge"
    return (parts, rule), described


def cot_monitor_command(
    trace_file: Path | None,
    text: str | None,
    regex: list[str] | None,
    judge: Any,
    rubric: str | None,
    threshold: float,
    rule: str,
    unparseable: str,
    html: Path | None,
    fail_on_flag: bool,
    *,
    write: Callable[[Path, Any], Any],
) -> None:
    """``whybox cot``: monitors over traces (errors raised as WhyboxError)."""
    from .text.cot import CombinedMonitor, render_trace

    traces = _read_traces(trace_file, text)
    (parts, rule), described = _monitors(regex, judge, rubric, threshold, rule, unparseable)
    inputs = [trace_file] if trace_file is not None else []
    html_file = check_output_report(html, "--html", inputs=inputs) if html else None
    t0 = time.perf_counter()
    monitors = []
    for p in parts:
        if isinstance(p, tuple):
            with err_console.status("loading the judge"):
                cls, kw, thr = p
                monitors.append(cls(_load(judge), threshold=thr, **kw))
        else:
            monitors.append(p)
    monitor = monitors[0] if len(monitors) == 1 else CombinedMonitor(monitors, rule)
    results = []
    with _progress() as bar:
        task = bar.add_task("monitoring traces", total=len(traces))
        for t in traces:
            results.append(monitor.check(t))
            bar.advance(task)
    if html_file is not None:
        body = "".join(render_trace(r, title=f"Trace {i}") for i, r in enumerate(results))
        page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>whybox cot: monitors'
            "</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px}"
            f"</style></head><body><h1>whybox cot: monitors</h1><p>{_html.escape(described)}"
            f"</p>{body}</body></html>"
        )
        write(html_file, lambda p: _atomic_write(p, page))
    table = Table(title=f"chain-of-thought monitors ({described})")
    for c in ("trace", "monitor", "score", "flagged", "spans"):
        table.add_column(c, justify="left" if c == "monitor" else "right")
    for i, r in enumerate(results):
        for k, x in enumerate([r, *r.children]):
            table.add_row(str(i) if k == 0 else "", _plain(x.monitor), f"{x.score:.3f}",
                          "FLAGGED" if x.flagged else "no", str(len(x.spans)))  # fmt: skip
    console.print(table)
    spans = Table(title="flagged spans (character offsets)")
    for c in ("trace", "start", "end", "monitor", "label", "text"):
        spans.add_column(c, justify="right" if c in ("trace", "start", "end") else "left")
    n_spans = 0
    for i, r in enumerate(results):
        for s in r.spans:
            n_spans += 1
            spans.add_row(str(i), str(s.start), str(s.end), _plain(s.monitor), _plain(s.label, 30),
                          _plain(s.text(r.trace), 60))  # fmt: skip
    if n_spans:
        console.print(spans)
    flagged = sum(r.flagged for r in results)
    console.print(f"{flagged} of {len(results)} traces flagged", markup=False)
    if html_file is not None:
        console.print(f"written: {html_file}", markup=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)
    if fail_on_flag and flagged:
        raise typer.Exit(code=3)


_TESTS = ("early_answering", "adding_mistakes", "paraphrasing", "filler")


def cot_faithfulness_command(
    backend: Any,
    prompts: list[str] | None,
    prompts_file: Path | None,
    cot_cue: str,
    answer_cue: str,
    tests: str | None,
    max_cot_tokens: int,
    max_answer_tokens: int,
    threshold: float,
    seed: int,
    html: Path | None,
    *,
    write: Callable[[Path, Any], Any],
) -> None:
    """``whybox cot faithfulness``: Lanham et al.'s tests (errors raised as WhyboxError)."""
    from .text.cot import faithfulness

    questions = list(prompts or [])
    if prompts_file is not None:
        questions += [ln for ln in _read_text(prompts_file, "--prompts").splitlines() if ln.strip()]
    if not questions:
        raise InvalidParameterError(
            'no questions: pass --prompt "..." (repeatable) or --prompts FILE (one per line).'
        )
    for i, q in enumerate(questions):
        if not q.strip():
            raise InvalidInputError(f"--prompt {i} is empty; pass the question text.")
    chosen = list(_TESTS)
    if tests is not None:
        chosen = [t.strip() for t in tests.split(",") if t.strip()]
        bad = [t for t in chosen if t not in _TESTS]
        if bad or not chosen:
            raise InvalidParameterError(
                f"--tests {tests!r}: unknown {bad or 'empty'}; choose from {', '.join(_TESTS)}."
            )
    if not 0.0 <= threshold <= 1.0:
        raise InvalidParameterError(f"--threshold {threshold} must be in [0, 1].")
    inputs = [prompts_file] if prompts_file is not None else []
    html_file = check_output_report(html, "--html", inputs=inputs) if html else None
    t0 = time.perf_counter()
    with err_console.status("loading the model"):
        be = _load(backend)
    with err_console.status(f"faithfulness tests on {len(questions)} questions"):
        rep = faithfulness(
            be, questions, cot_cue=cot_cue, answer_cue=answer_cue, tests=chosen,
            max_cot_tokens=max_cot_tokens, max_answer_tokens=max_answer_tokens,
            threshold=threshold, random_state=seed,
        )  # fmt: skip
    if html_file is not None:
        page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>whybox cot faithfulness'
            "</title></head><body><h1>whybox cot faithfulness</h1>"
            f"{rep._repr_html_()}</body></html>"
        )
        write(html_file, lambda p: _atomic_write(p, page))
    table = Table(title=f"chain-of-thought faithfulness (Lanham et al. 2023), {rep.n_questions} "
                        f"questions, {rep.calls} calls")  # fmt: skip
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in rep.summary().items():
        if k not in ("n_questions", "calls"):
            table.add_row(k, _num(v, 3) or "not run")
    console.print(table)
    if "early_answering" in chosen:
        curve = Table(title="early answering: same answer as with the full CoT")
        curve.add_column("fraction of CoT kept", justify="right")
        curve.add_column("agreement", justify="right")
        for f, a in zip(rep.fractions, rep.early_agreement, strict=True):
            curve.add_row(f"{f:.1f}", _num(a, 3))
        console.print(curve)
    console.print(Text("verdict: ") + Text(rep.verdict))
    for note in rep.notes:
        console.print(Text("note: ") + Text(note))
    if html_file is not None:
        console.print(f"written: {html_file}", markup=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)


def register(
    app: typer.Typer,
    *,
    fail: Callable[[Exception], None],
    write: Callable[[Path, Any], Any],
    trust_model: Any,
) -> None:
    """Add the ``cot`` group (monitors; ``cot faithfulness``) to the ``whybox`` app.

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

    cot_app = typer.Typer(help="Chain-of-thought: monitors over reasoning traces, and "
                          "faithfulness tests.", rich_markup_mode="rich")

    @cot_app.callback(invoke_without_command=True)
    def cot(
        ctx: typer.Context,
        trace: Path | None = Opt(None, "--trace", help="A trace file (one trace), or a .json list "
                               "of traces."),
        text: str | None = Opt(None, "--text", help="The trace itself."),
        regex: list[str] | None = Opt(None, "--regex", help="A pattern to flag (repeatable; "
                                    "default: built-in misbehaviour patterns when no judge)."),
        judge_model: Path | None = Opt(None, "--judge-model", metavar="MODEL_DIR",
                                     help="An LLM judge: " + _MODEL_HELP),
        endpoint: str | None = Opt(None, "--endpoint", metavar="URL",
                                 help="An LLM judge: " + _ENDPOINT_HELP),
        endpoint_model: str | None = name_opt,
        api_key_env: str | None = key_opt,
        rubric: str | None = Opt(None, "--rubric", help="What the judge grades (0-10)."),
        threshold: float = Opt(0.5, "--threshold", help="Judge: flagged at grade/10 >= it."),
        rule: str = Opt("any", "--rule", help="Combine monitors: any or all."),
        unparseable: str = Opt("raise", "--unparseable", help="A judge answer without a grade: "
                             "raise (exit 1) or flag (the trace is flagged for review)."),
        html: Path | None = html_opt,
        fail_on_flag: bool = Opt(False, "--fail-on-flag", help="Exit with code 3 when a trace is "
                               "flagged."),
        max_retries: int = retries_opt,
        timeout: float = timeout_opt,
        trust: bool = trust_model,
    ) -> None:
        """Monitor reasoning traces: regex patterns and an LLM judge; flagged spans shown.

        [bold]whybox cot faithfulness[/] runs the faithfulness tests of Lanham et al. (2023).
        """
        if ctx.invoked_subcommand is not None:
            return

        def work() -> None:
            judge = backend(judge_model, endpoint, endpoint_model, api_key_env, trust,
                            max_retries, timeout, required=False, option="--judge-model")
            cot_monitor_command(trace, text, regex, judge, rubric, threshold, rule, unparseable,
                                html, fail_on_flag, write=write)

        _run(fail, work, models=judge_model is not None or endpoint is not None)

    @cot_app.command("faithfulness")
    def cot_faithfulness(
        model: Path | None = model_opt,
        endpoint: str | None = endpoint_opt,
        endpoint_model: str | None = name_opt,
        api_key_env: str | None = key_opt,
        prompt: list[str] | None = Opt(None, "--prompt", help="A question after which the model "
                                     "reasons (repeatable)."),
        prompts: Path | None = Opt(None, "--prompts", help="A file of questions, one per line."),
        cot_cue: str = Opt("", "--cot-cue", help="Appended before the CoT (\\n: a new line)."),
        answer_cue: str = Opt("\\nAnswer:", "--answer-cue", help="Appended after the CoT to ask "
                            "for the answer (\\n: a new line)."),
        tests: str | None = Opt(None, "--tests", help="Comma-separated subset of "
                              + ", ".join(_TESTS) + "."),
        max_cot_tokens: int = Opt(128, "--max-cot-tokens", min=1),
        max_answer_tokens: int = Opt(8, "--max-answer-tokens", min=1),
        threshold: float = Opt(0.2, "--threshold", help="AOC / change rate counted as dependence "
                             "on the CoT."),
        seed: int = Opt(0, "--seed", min=0, help="Random seed (mistakes)."),
        html: Path | None = html_opt,
        max_retries: int = retries_opt,
        timeout: float = timeout_opt,
        trust: bool = trust_model,
    ) -> None:
        """Does the answer depend on the chain of thought? Lanham et al.'s (2023) tests:
        early answering, adding mistakes, paraphrasing, filler tokens."""

        def work() -> None:
            be = backend(model, endpoint, endpoint_model, api_key_env, trust, max_retries, timeout)
            cot_faithfulness_command(be, prompt, prompts, cot_cue.replace("\\n", "\n"),
                                     answer_cue.replace("\\n", "\n"), tests, max_cot_tokens,
                                     max_answer_tokens, threshold, seed, html, write=write)

        _run(fail, work)
    # fmt: on

    app.add_typer(cot_app, name="cot")
