"""The command line's model-internals commands: ``whybox lens`` and ``whybox patch``.

Both load a Hugging Face causal language model from a local folder (``save_pretrained``
output: ``config.json``, weights, tokenizer files) with
``AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")`` and its
``AutoTokenizer``, and print a Rich table:

- ``whybox lens MODEL_DIR "text"``: the logit lens (:func:`whybox.logit_lens`), lens entries
  (the embeddings, then each block's output) x positions, each cell the top tokens and their
  probabilities, or with ``--target`` also the target token's rank and probability;
- ``whybox patch MODEL_DIR --clean ... --corrupted ... --answer " X" --wrong " Y"``:
  activation (or attribution) patching of a metric at the last position, the grid as layers
  x positions or layers x heads.

``--html OUT`` also writes the report page (:mod:`whybox.report.internals`; atomic write).

Weights are read from safetensors files only: a folder whose weights are pickles
(``pytorch_model.bin``) is refused unless ``--trust-model`` (unpickling runs code), as every
command that loads a model file does. Remote code is never run (``trust_remote_code`` stays
off). Bad input is one line on stderr and exit code 2, checked before any work, and nothing
is written unless everything succeeded (:mod:`whybox.cli`'s rule). The module is
registered on the ``whybox`` app by :func:`register`; it imports torch and transformers only
when a command runs.

References
----------
.. [1] nostalgebraist (2020), "interpreting GPT: the logit lens", LessWrong.
.. [2] Heimersheim & Nanda (2024), "How to use and interpret activation patching",
       arXiv:2404.15255.
"""

from __future__ import annotations

import contextlib
import difflib
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ._cli_console import console
from ._cli_inputs import check_output_report
from .errors import InvalidInputError, InvalidParameterError, WhyboxError

__all__ = [
    "METRICS",
    "PATCH_SITES",
    "load_language_model",
    "parse_indices",
    "register",
]


#: per-layer sites ``whybox patch --site`` accepts
PATCH_SITES = (
    "resid_pre",
    "resid_mid",
    "resid_post",
    "attn.out",
    "mlp.out",
    "mlp.post",
    "attn.head_out",
    "attn.q",
    "attn.k",
    "attn.v",
)
#: ``--metric`` choices: what is read from the logits at the last position
METRICS = {
    "logit-diff": "logit[answer] - logit[wrong]",
    "logit": "logit[answer]",
    "prob": "p(answer)",
    "logprob": "log p(answer)",
}
#: weight files of a saved model folder
_SAFE_WEIGHTS = ("*.safetensors",)
_PICKLE_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")
#: positions ``whybox lens`` shows by default (the last ones)
DEFAULT_POSITIONS = 12


# ---------------------------------------------------------------------- loading
def _check_model_folder(folder: Path, trust_model: bool) -> bool:
    """Check a saved model folder before loading it; True if its weights are safetensors."""
    shown = repr(str(folder))
    if not folder.exists():
        raise InvalidInputError(
            f"model folder {shown} does not exist; pass the folder written by "
            "model.save_pretrained(...) (with config.json, the weights and the tokenizer)."
        )
    if not folder.is_dir():
        raise InvalidInputError(
            f"model folder {shown} is a file; pass the folder that holds config.json, the "
            "weights and the tokenizer (written by save_pretrained)."
        )
    if not (folder / "config.json").is_file():
        raise InvalidInputError(
            f"model folder {shown} has no config.json, so it is not a saved transformers "
            "model; save one with model.save_pretrained(folder) and "
            "tokenizer.save_pretrained(folder)."
        )
    safe = any(any(folder.glob(p)) for p in _SAFE_WEIGHTS)
    pickled = sorted({f.name for p in _PICKLE_WEIGHTS for f in folder.glob(p)})
    if safe:
        return True
    if pickled:
        if not trust_model:
            raise InvalidParameterError(
                f"refusing to load {shown}: its weights {pickled[:3]} are pickle files, and "
                "unpickling runs whatever code the file contains. Load it only if you created "
                "it or trust its source, by passing --trust-model. Safer: load it once where you "
                "trust it and re-save it with model.save_pretrained(folder), which writes "
                "safetensors."
            )
        return False
    raise InvalidInputError(
        f"model folder {shown} holds no weights (no *.safetensors file); save the model "
        "with model.save_pretrained(folder)."
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' logging, progress bars and warnings off for a while (restored after)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def load_language_model(
    folder: str | Path, trust_model: bool = False, device: str = "cpu"
) -> tuple[Any, Any]:
    """A causal LM and its tokenizer from a saved folder (eager attention, eval mode).

    Parameters
    ----------
    folder : path
        Written by ``save_pretrained``: ``config.json``, ``*.safetensors`` weights (pickled
        ``pytorch_model.bin`` only with ``trust_model``) and the tokenizer files.
    trust_model : bool, default False
        Allow pickled weights.
    device : str, default "cpu"

    Returns
    -------
    (model, tokenizer)

    Raises
    ------
    InvalidInputError
        A missing folder, a file, no config.json, no weights, no tokenizer, or a folder
        transformers cannot load (its reason quoted).
    InvalidParameterError
        Pickled weights without ``trust_model``; a device torch cannot use.
    """
    folder = Path(folder)
    return load_pretrained(folder, trust_model, device, causal=True)


def load_pretrained(
    folder: str | Path, trust_model: bool = False, device: str = "cpu", *, causal: bool = True
) -> tuple[Any, Any]:
    """:func:`load_language_model`, or with ``causal=False`` any model through ``AutoModel``
    (a sentence encoder: no language-model head)."""
    folder = Path(folder)
    safe = _check_model_folder(folder, trust_model)
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    shown = repr(str(folder))
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, TypeError) as exc:
        raise InvalidParameterError(
            f"--device {device!r} is not a device torch can use here ({_reason(exc)}); pass "
            "cpu, cuda, cuda:1 or mps."
        ) from exc
    with _quiet():
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as exc:
            raise InvalidInputError(
                f"model folder {shown}: its tokenizer could not be loaded ({type(exc).__name__}"
                f": {_reason(exc)}); save it beside the model with "
                "tokenizer.save_pretrained(folder)."
            ) from exc
        try:
            auto = AutoModelForCausalLM if causal else AutoModel
            model = auto.from_pretrained(folder, attn_implementation="eager", use_safetensors=safe)
        except Exception as exc:
            what = " as a causal language model" if causal else ""
            raise InvalidInputError(
                f"model folder {shown} could not be loaded{what} "
                f"({type(exc).__name__}: {_reason(exc)})."
            ) from exc
    return model.to(dev).eval(), tokenizer


def _max_positions(model: Any) -> int | None:
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _encode(tokenizer: Any, model: Any, text: str, option: str) -> Any:
    """Token ids (1, pos) of ``text`` on the model's device; empty or too long refused."""
    if not text:
        raise InvalidInputError(f"{option} is empty; pass some text.")
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    n = int(ids.shape[1])
    if n == 0:
        raise InvalidInputError(f"{option} {text[:40]!r} tokenizes to no tokens; pass some text.")
    limit = _max_positions(model)
    if limit is not None and n > limit:
        raise InvalidInputError(
            f"{option} is {n} tokens long, but the model has only {limit} positions "
            "(config max_position_embeddings); shorten the text."
        )
    vocab = getattr(model.config, "vocab_size", None)
    if vocab is not None and int(ids.max()) >= vocab:
        raise InvalidInputError(
            f"{option} tokenizes to id {int(ids.max())}, but the model's vocabulary has "
            f"{vocab} tokens: the folder's tokenizer does not match the model."
        )
    return ids.to(next(model.parameters()).device)


def _one_token(tokenizer: Any, token: str, option: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise InvalidParameterError(
            f"{option} {token!r} is {len(ids)} tokens {pieces} for this tokenizer; it must be "
            "one token. Pick a word the tokenizer keeps whole (mind the leading space: "
            "' Paris' and 'Paris' are different tokens)."
        )
    return int(ids[0])


# ---------------------------------------------------------------------- options
def parse_indices(text: str | None, option: str) -> list[int] | None:
    """``"0,3,-1"`` or ``"2:6"`` (Python slice bounds, end excluded) as a list of ints."""
    if text is None:
        return None
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if ":" in part:
                a, b = part.split(":", 1)
                out.extend(range(int(a) if a.strip() else 0, int(b)))
            else:
                out.append(int(part))
        except ValueError as exc:
            raise InvalidParameterError(
                f"{option} {text!r} must be comma-separated integers or ranges a:b (end "
                "excluded), e.g. 0,3,-1 or 2:6."
            ) from exc
    if not out:
        raise InvalidParameterError(f"{option} {text!r} names no index; e.g. 0,3,-1 or 2:6.")
    return out


def _resolve(values: list[int], size: int, option: str) -> list[int]:
    out = []
    for v in values:
        i = v + size if v < 0 else v
        if not 0 <= i < size:
            raise InvalidParameterError(
                f"{option} {v} is out of range: there are {size} (0..{size - 1}; negative "
                "values count from the end)."
            )
        if i not in out:
            out.append(i)
    return out


def _check_site(site: str) -> None:
    if site in PATCH_SITES:
        return
    close = difflib.get_close_matches(site, PATCH_SITES, n=3, cutoff=0.4)
    raise InvalidParameterError(
        f"--site {site!r} is not a patching site"
        + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "")
        + f"; the sites are {', '.join(PATCH_SITES)}."
    )


def _lens_layers(text: str | None, labels: list[str]) -> list[int] | None:
    """``--layers``: lens entry indices or labels (``embed``, ``L3``)."""
    if text is None:
        return None
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in labels:
            out.append(labels.index(part))
            continue
        try:
            out.extend(parse_indices(part, "--layers") or [])
        except InvalidParameterError:
            raise InvalidParameterError(
                f"--layers {text!r}: {part!r} is neither an index nor a lens entry; the "
                f"entries are {', '.join(labels)} (or their indices 0..{len(labels) - 1})."
            ) from None
    return _resolve(out, len(labels), "--layers entry")


def _token_text(token: str) -> str:
    from .report.internals import show_token

    return show_token(token)


# ---------------------------------------------------------------------- lens
def _lens_cells(lens: Any, entries: list[int], cols: list[int], k: int) -> dict:
    """Rich cells of the lens table, {(entry, position): Text}, and the header cells."""
    top = lens.top_tokens(k)
    probs = top.probs.detach().cpu().numpy()[:, 0]
    names = top.tokens[:, 0]
    in_ids = lens.input_ids[0].tolist()
    has_target = lens.target is not None
    if has_target:
        rank = lens.rank().cpu().numpy()[:, 0]
        prob = lens.prob().detach().cpu().numpy()[:, 0]
    cells: dict[Any, Text] = {}
    for p in cols:
        cells["head", p] = Text(f"{p}\n{_token_text(lens.tokenizer.decode([in_ids[p]]))}")
        for e in entries:
            cell = Text()
            if has_target:
                style = "bold" if rank[e, p] == 0 else ""
                cell.append(f"#{int(rank[e, p])} p={prob[e, p]:.3f}\n", style=style)
            for j in range(k):
                cell.append(_token_text(names[e, p, j]), style="bold" if j == 0 else "")
                cell.append(f" {probs[e, p, j]:.2f}" + ("\n" if j < k - 1 else ""), style="dim")
            cells[e, p] = cell
    return cells


def _width(text: Text) -> int:
    return max((len(line) for line in text.plain.split("\n")), default=0)


def _fit(cells: dict, entries: list[int], cols: list[int], labels: list[str], width: int) -> int:
    """How many of the last ``cols`` fit a console ``width`` wide beside the labels."""
    used = 4 + max(len(labels[e]) for e in entries)
    n = 0
    for p in reversed(cols):
        w = max(_width(cells[key]) for key in cells if key[1] == p) + 3
        if n and used + w > width:
            break
        used += w
        n += 1
    return n


def _lens_table(lens: Any, cells: dict, entries: list[int], cols: list[int], title: str) -> Table:
    table = Table(title=escape(title), show_lines=True)
    table.add_column("layer", no_wrap=True, min_width=max(len(lens.labels[e]) for e in entries))
    for p in cols:
        table.add_column(cells["head", p], overflow="fold")
    for e in entries:
        table.add_row(Text(lens.labels[e]), *[cells[e, p] for p in cols])
    return table


def lens_command(
    model_dir: Path,
    text: str,
    layers: str | None,
    top_k: int,
    target: str | None,
    positions: str | None,
    html: Path | None,
    trust_model: bool,
    device: str,
    *,
    write: Callable[[Path, Any], Any],
) -> None:
    """``whybox lens``: the work (errors raised as WhyboxError)."""
    from .internals.lens import logit_lens

    pos_list = parse_indices(positions, "--positions")
    html_file = check_output_report(html, "--html") if html is not None else None
    t0 = time.perf_counter()
    model, tokenizer = load_language_model(model_dir, trust_model, device)
    ids = _encode(tokenizer, model, text, "TEXT")
    target_id = _one_token(tokenizer, target, "--target") if target is not None else None
    n_pos = int(ids.shape[1])
    cols = (
        _resolve(pos_list, n_pos, "--positions entry")
        if pos_list is not None
        else list(range(max(0, n_pos - DEFAULT_POSITIONS), n_pos))
    )
    k = min(top_k, int(model.config.vocab_size))
    lens = logit_lens(model, ids, target=target_id, top_k=k, tokenizer=tokenizer)
    entries = _lens_layers(layers, lens.labels)
    entries = entries if entries is not None else list(range(len(lens.labels)))
    cells = _lens_cells(lens, entries, cols, k)
    html_cols = cols if pos_list is not None else list(range(n_pos))
    if pos_list is None:  # the last positions that fit the terminal
        cols = cols[len(cols) - _fit(cells, entries, cols, lens.labels, console.width) :]
    if html_file is not None:
        from .report import Report
        from .report.internals import lens_section

        rep = Report(
            title=f"whybox lens: {model_dir.name}",
            subtitle=f"{type(model).__name__} on {text[:80]!r}",
        )
        rep.add(lens_section(lens, layers=entries, positions=html_cols, top_k=k))
        write(html_file, rep.save)
    what = f"top {k}" + (f", rank and p of {_token_text(target)!r}" if target is not None else "")
    title = f"logit lens of {type(model).__name__} ({what}), next token"
    console.print(_lens_table(lens, cells, entries, cols, title))
    if len(cols) < n_pos:
        console.print(
            f"positions shown: {len(cols)} of {n_pos} (--positions 0:{n_pos} for all)",
            markup=False,
        )
    if html_file is not None:
        console.print(f"report written to {html_file}", markup=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)


# ---------------------------------------------------------------------- patch
def _metric(name: str, answer: int, wrong: int | None) -> Callable[[Any], Any]:
    import torch

    def metric(logits: Any) -> Any:
        last = logits[:, -1, :]
        if name == "logit-diff":
            return (last[:, answer] - last[:, wrong]).mean()
        if name == "logit":
            return last[:, answer].mean()
        logp = torch.log_softmax(last.float(), dim=-1)[:, answer]
        return logp.exp().mean() if name == "prob" else logp.mean()

    metric.__name__ = METRICS[name]
    metric.__qualname__ = METRICS[name]
    return metric


def _patch_table(exp: Any, tokens: dict[int, str], title: str) -> Table:
    """The grid as a Rich table: positions (or heads) down, layers across, so long prompts
    grow the table downwards; cells coloured by the sign of their effect (red: above the
    unpatched run, blue: below; bold: at least half the largest effect)."""
    import numpy as np

    values = np.asarray(exp.values, dtype=float)[0].reshape(exp.meta["grid_shape"])
    axes = exp.meta["grid_axes"]
    index = exp.meta["grid_index"]
    base = float(np.asarray(exp.base_values, dtype=float).reshape(-1)[0])

    def labels(axis: int) -> list[str]:
        name = axes[axis]
        if name == "layer":
            return [f"L{i}" for i in index[axis]]
        if name == "head":
            return [f"H{i}" for i in index[axis]]
        return [f"{i} {tokens[i]}" if i in tokens else f"pos{i}" for i in index[axis]]

    if values.ndim == 1:
        rows, cols, grid, corner = (
            list(exp.feature_names),
            [exp.output_names[0]],
            values[:, None],
            "",
        )
    elif values.ndim == 2 and "position" in axes:
        rows, cols, grid, corner = labels(1), labels(0), values.T, "position"
    elif values.ndim == 2:
        rows, cols, grid, corner = labels(0), labels(1), values, "layer"
    else:  # layer x position x head: (layer @ position) down, heads across
        rows = [f"{a} @ {b}" for a in labels(0) for b in labels(1)]
        cols, grid, corner = labels(2), values.reshape(-1, values.shape[-1]), "layer @ position"
    effect = grid - base
    span = float(np.nanmax(np.abs(effect))) if np.isfinite(effect).any() else 0.0
    table = Table(title=escape(title))
    table.add_column(corner, no_wrap=True, min_width=max(len(r) for r in rows))
    for c in cols:
        table.add_column(Text(c), justify="right", overflow="fold")
    for r, label in enumerate(rows):
        cells: list[Any] = [Text(label)]
        for c in range(grid.shape[1]):
            e = float(effect[r, c])
            style = ""
            if span > 0 and e != 0:
                style = ("red" if e > 0 else "blue") + (" bold" if abs(e) >= 0.5 * span else "")
            cells.append(Text(f"{grid[r, c]:.3g}", style=style))
        table.add_row(*cells)
    return table


def patch_command(
    model_dir: Path,
    clean: str,
    corrupted: str,
    metric_name: str,
    answer: str,
    wrong: str | None,
    site: str,
    by: str | None,
    method: str,
    direction: str,
    normalize: bool,
    align: str | None,
    layers: str | None,
    positions: str | None,
    html: Path | None,
    trust_model: bool,
    device: str,
    *,
    write: Callable[[Path, Any], Any],
) -> None:
    """``whybox patch``: the work (errors raised as WhyboxError)."""
    _check_site(site)
    if metric_name not in METRICS:
        raise InvalidParameterError(
            f"--metric {metric_name!r} is not supported; choose one of {', '.join(METRICS)}."
        )
    if metric_name == "logit-diff" and wrong is None:
        raise InvalidParameterError(
            "--metric logit-diff needs --wrong TOKEN (the answer of the corrupted prompt), "
            "besides --answer; or use --metric logit / prob / logprob."
        )
    for option, value, allowed in (
        ("--method", method, ("activation", "attribution")),
        ("--direction", direction, ("denoise", "noise")),
        ("--align", align, (None, "left", "right")),
        ("--by", by, (None, "pos", "head", "head_pos", "layer")),
    ):
        if value not in allowed:
            raise InvalidParameterError(
                f"{option} {value!r} is not supported; choose one of "
                f"{', '.join(a for a in allowed if a)}."
            )
    layer_list = parse_indices(layers, "--layers")
    pos_list = parse_indices(positions, "--positions")
    html_file = check_output_report(html, "--html") if html is not None else None
    t0 = time.perf_counter()
    model, tokenizer = load_language_model(model_dir, trust_model, device)
    clean_ids = _encode(tokenizer, model, clean, "--clean")
    corr_ids = _encode(tokenizer, model, corrupted, "--corrupted")
    pc, pk = int(clean_ids.shape[1]), int(corr_ids.shape[1])
    clean_tokens = [tokenizer.decode([i]) for i in clean_ids[0].tolist()]
    corr_tokens = [tokenizer.decode([i]) for i in corr_ids[0].tolist()]
    if pc != pk and align is None:
        n = min(pc, pk)
        raise InvalidInputError(
            f"--clean is {pc} tokens {[_token_text(t) for t in clean_tokens][:12]} and "
            f"--corrupted is {pk} tokens {[_token_text(t) for t in corr_tokens][:12]}; "
            "patching compares them position by position, so reword them to the same number "
            f"of tokens, or pass --align left (positions 0..{n - 1} of both) or --align right "
            f"(the last {n} of each)."
        )
    answer_id = _one_token(tokenizer, answer, "--answer")
    wrong_id = _one_token(tokenizer, wrong, "--wrong") if wrong is not None else None
    metric = _metric(metric_name, answer_id, wrong_id)

    from .internals import patching

    fn = patching.activation_patching if method == "activation" else patching.attribution_patching
    exp = fn(
        model,
        clean_ids,
        corr_ids,
        metric,
        site=site,
        by=by,
        layers=layer_list,
        positions=pos_list,
        direction=direction,
        normalize=normalize,
        align=align,
    )
    exp.meta["clean_tokens"] = clean_tokens
    exp.meta["corrupted_tokens"] = corr_tokens
    from .report.internals import position_labels

    tokens = position_labels(exp) or {}
    if html_file is not None:
        from .report.internals import internals_report

        rep = internals_report(
            exp,
            title=f"whybox patch: {model_dir.name}",
            subtitle=f"{type(model).__name__}: clean {clean[:60]!r} vs corrupted "
            f"{corrupted[:60]!r}",
        )
        write(html_file, rep.save)
    meta = exp.meta
    title = (
        f"{method} patching of {METRICS[metric_name]} at the last position, site {site} "
        f"({direction}{', normalized' if normalize else ''})"
    )
    console.print(_patch_table(exp, tokens, title))
    console.print(
        f"clean: {meta['clean_metric']:.4g}   corrupted: {meta['corrupted_metric']:.4g}   "
        f"unpatched run: {float(exp.base_values[0]):.4g}"
        + (" (values are fractions of the gap)" if normalize else ""),
        markup=False,
    )
    if exp.params.get("by") in ("head", "layer"):
        together = pos_list if pos_list is not None else meta["compared_positions"]
        console.print(
            f"each cell patches positions {', '.join(map(str, together))} together", markup=False
        )
    if html_file is not None:
        console.print(f"report written to {html_file}", markup=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)


# ---------------------------------------------------------------------- registration
_MODEL_DIR_HELP = (
    "Folder of a saved causal language model: config.json, *.safetensors weights and the "
    "tokenizer (model.save_pretrained / tokenizer.save_pretrained)."
)
_HTML_HELP = "Also write the report page: a .html file, or a folder (index.html in it)."
_DEVICE_HELP = "Device to run the model on: cpu, cuda, cuda:1, mps."


def register(
    app: typer.Typer,
    *,
    fail: Callable[[Exception], None],
    write: Callable[[Path, Any], Any],
    trust_model: Any,
) -> None:
    """Add ``lens`` and ``patch`` to the ``whybox`` app.

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

    @app.command("lens")
    def lens(
        model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help=_MODEL_DIR_HELP),
        text: str = typer.Argument(..., metavar="TEXT", help="The text read by the lens."),
        layers: str | None = typer.Option(
            None,
            "--layers",
            help="Lens entries to show: labels (embed, L0, L3) or indices / ranges "
            "(0,2,-1 or 1:4). Default: all.",
        ),
        top_k: int = typer.Option(5, "--top-k", min=1, max=20, help="Top tokens per cell."),
        target: str | None = typer.Option(
            None,
            "--target",
            help="A token (one token, mind the leading space: ' Paris'): also show its rank "
            "(0 = top) and probability in every cell.",
        ),
        positions: str | None = typer.Option(
            None,
            "--positions",
            help=f"Positions to show: 0,3,-1 or 2:6. Default: the last {DEFAULT_POSITIONS}.",
        ),
        html: Path | None = typer.Option(None, "--html", help=_HTML_HELP),
        trust: bool = trust_model,
        device: str = typer.Option("cpu", "--device", help=_DEVICE_HELP),
    ) -> None:
        """The logit lens: what the model would predict after each layer, at each position.

        Every layer's residual stream goes through the model's own final norm and
        unembedding; each cell lists the most probable next tokens there.
        """
        try:
            lens_command(
                model_dir, text, layers, top_k, target, positions, html, trust, device,
                write=write,
            )  # fmt: skip
        except WhyboxError as exc:
            fail(exc)

    @app.command("patch")
    def patch(
        model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help=_MODEL_DIR_HELP),
        clean: str = typer.Option(..., "--clean", help="The prompt where the model is right."),
        corrupted: str = typer.Option(
            ...,
            "--corrupted",
            help="A minimally different prompt of the same number of tokens.",
        ),
        metric_name: str = typer.Option(
            "logit-diff",
            "--metric",
            help="What is measured at the last position: logit-diff (logit of --answer minus "
            "logit of --wrong), logit, prob or logprob of --answer.",
        ),
        answer: str = typer.Option(
            ..., "--answer", help="The clean prompt's answer: one token, e.g. ' Paris'."
        ),
        wrong: str | None = typer.Option(
            None, "--wrong", help="The corrupted prompt's answer (one token), for logit-diff."
        ),
        site: str = typer.Option(
            "resid_pre",
            "--site",
            help="What is patched in each layer: " + ", ".join(PATCH_SITES) + ".",
        ),
        by: str | None = typer.Option(
            None,
            "--by",
            help="Grid: pos (layer x position), head (layer x head), head_pos, layer. "
            "Default: head for head sites, else pos.",
        ),
        method: str = typer.Option(
            "activation",
            "--method",
            help="activation (patch each cell) or attribution (first-order estimate: one "
            "backward pass).",
        ),
        direction: str = typer.Option(
            "denoise",
            "--direction",
            help="denoise: clean activations into the corrupted run; noise: the reverse.",
        ),
        normalize: bool = typer.Option(
            False, "--normalize", help="Show each cell as a fraction of the clean-corrupted gap."
        ),
        align: str | None = typer.Option(
            None,
            "--align",
            help="Prompts of different lengths: compare the first (left) or last (right) "
            "positions.",
        ),
        layers: str | None = typer.Option(
            None, "--layers", help="Layers of the grid: 0,3,-1 or 2:6. Default: all."
        ),
        positions: str | None = typer.Option(
            None, "--positions", help="Positions of the grid: 0,3,-1 or 2:6. Default: all."
        ),
        html: Path | None = typer.Option(None, "--html", help=_HTML_HELP),
        trust: bool = trust_model,
        device: str = typer.Option("cpu", "--device", help=_DEVICE_HELP),
    ) -> None:
        """Activation patching between a clean and a corrupted prompt, as a table.

        Each cell patches one activation (a layer's residual stream at one position, or one
        head's output) of one run into the other and measures the metric.
        """
        try:
            patch_command(
                model_dir, clean, corrupted, metric_name, answer, wrong, site, by, method,
                direction, normalize, align, layers, positions, html, trust, device,
                write=write,
            )  # fmt: skip
        except WhyboxError as exc:
            fail(exc)
