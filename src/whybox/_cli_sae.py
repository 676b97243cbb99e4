"""The command line's sparse-autoencoder commands: ``whybox sae train | eval | features``.

- ``whybox sae train MODEL_DIR --site blocks.1.resid_post --architecture topk --width 1024
  --k 16 --tokens N (--text FILE | --pydoc) --out SAE_DIR``: trains an SAE on the model's
  activations at the site (:func:`whybox.sae.train`, a Rich progress bar with L0, FVU and the
  dead fraction) and writes a SAELens-compatible folder (``cfg.json`` +
  ``sae_weights.safetensors``);
- ``whybox sae eval SAE_DIR MODEL_DIR (--text FILE | --pydoc)``: the evaluation table
  (:func:`whybox.sae.evaluate`: L0, FVU, CE loss recovered, KL, dead / dense fractions) as a
  Rich table, ``--json OUT`` also writes it;
- ``whybox sae features SAE_DIR MODEL_DIR --out FEATURES_DIR``: gathers the feature-page data
  (:func:`whybox.sae.feature_data`) into a folder and prints a few latents whose top contexts
  peak on one token (:func:`whybox.sae.demo.concept_features`).

Text comes from ``--text FILE`` (UTF-8; documents separated by blank lines) or ``--pydoc``
(the pydoc topics the zoo's tiny LM was trained on, offline: the training topics for
``train``, the held-out ones for ``eval`` and ``features``). Models are loaded from local
``save_pretrained`` folders: a causal LM (``*ForCausalLM`` / ``*LMHeadModel``) with its head,
any other model with ``AutoModel``; weights must be safetensors unless ``--trust-model``
(unpickling runs code), remote code is never run. Bad input is one line on stderr and exit
code 2, checked before any work; nothing is written unless everything succeeded (folders are
written under a temporary name and renamed).

References
----------
Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
Bloom, J., Tigges, C., Duong, A. & Chanin, D. (2024). SAELens (folder format, evals table).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ._cli_console import console
from ._cli_inputs import check_output_file
from .errors import InvalidInputError, InvalidParameterError, WhyboxError

__all__ = ["load_model_folder", "read_texts", "register"]


#: what ``--architecture`` accepts (``relu`` is an alias of ``standard``)
ARCHITECTURE_CHOICES = ("standard", "relu", "topk", "batchtopk", "jumprelu", "matryoshka")
_TOPK_FAMILY = ("topk", "batchtopk", "matryoshka")
_SAE_FILES = ("cfg.json", "sae_weights.safetensors")


# ---------------------------------------------------------------------- inputs
def read_texts(text_file: Path | None, pydoc: bool, split: str) -> list[str]:
    """The documents of ``--text FILE`` (split at blank lines) or of ``--pydoc``."""
    if (text_file is None) == (not pydoc):
        raise InvalidParameterError(
            "pass exactly one source of text: --text FILE (a UTF-8 text file) or --pydoc "
            "(the pydoc topics, offline)."
        )
    if pydoc:
        from .zoo.tinylm import tiny_lm_corpus

        return tiny_lm_corpus(split)
    text_file = Path(str(text_file))
    shown = repr(str(text_file))
    if not text_file.exists():
        raise InvalidInputError(f"--text file {shown} does not exist; check the path.")
    if text_file.is_dir():
        raise InvalidInputError(f"--text {shown} is a folder; pass a UTF-8 text file.")
    try:
        raw = text_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"--text file {shown} is not UTF-8 text (byte {exc.start}); convert it to UTF-8."
        ) from exc
    except OSError as exc:
        raise InvalidInputError(f"--text file {shown} cannot be read ({exc.strerror}).") from exc
    docs = [d.strip() for d in raw.replace("\r\n", "\n").split("\n\n")]
    docs = [d for d in docs if d]
    if not docs:
        raise InvalidInputError(f"--text file {shown} is empty; pass a file with some text.")
    return docs


def encoder_texts(texts: list[str]) -> list[str]:
    """An encoder reads one row per text: documents are cut into their sentences
    (:func:`whybox.sae.demo.sentences`), which fit its context."""
    from .sae.demo import sentences

    return sentences(texts, min_words=2) or texts


def _causal(folder: Path) -> bool:
    try:
        cfg = json.loads((folder / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"model folder {str(folder)!r}: config.json is not readable JSON ({exc})."
        ) from exc
    archs = cfg.get("architectures") or []
    return any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def load_model_folder(
    folder: Path, trust_model: bool = False, device: str = "cpu"
) -> tuple[Any, Any]:
    """A model and its tokenizer from a ``save_pretrained`` folder (eager attention, eval).

    A causal LM (``config.json`` architectures ending in ``ForCausalLM`` / ``LMHeadModel``)
    is loaded with its head (CE loss and logit effects are then available), any other model
    with ``AutoModel`` (e.g. a sentence encoder). Safetensors only unless ``trust_model``.
    """
    from ._cli_internals import _check_model_folder, load_pretrained

    folder = Path(folder)
    _check_model_folder(folder, trust_model)  # before config.json is read
    return load_pretrained(folder, trust_model, device, causal=_causal(folder))


def _inputs(texts: list[str], tokenizer: Any, anatomy: Any, tokens: int | None) -> Any:
    """What evaluate / feature_data read: a causal model's texts as one token stream (BOS
    between documents), an encoder's as a list of texts; at most ``tokens`` tokens."""
    from ._cli_internals import _quiet

    with _quiet():
        return _token_inputs(texts, tokenizer, anatomy, tokens)


def _token_inputs(texts: list[str], tokenizer: Any, anatomy: Any, tokens: int | None) -> Any:
    import torch

    if not anatomy.is_causal:
        texts = encoder_texts(texts)
        if tokens is None:
            return texts
        out, n = [], 0
        for t in texts:
            out.append(t)
            n += len(tokenizer(t)["input_ids"])
            if n >= tokens:
                break
        return out
    sep = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids: list[int] = []
    for t in texts:
        if sep is not None:
            ids.append(int(sep))
        ids.extend(tokenizer(t, add_special_tokens=False)["input_ids"])
        if tokens is not None and len(ids) >= tokens:
            break
    if tokens is not None:
        ids = ids[:tokens]
    return torch.tensor(ids, dtype=torch.long)


def _check_sae_out(out: Path, option: str, inputs: tuple[Path, ...]) -> None:
    """An SAE output folder: new, empty, or an SAE folder (replaced); never an input."""
    shown = repr(str(out))
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"{option} {shown} is a file; pass a folder for the SAE.")
    if out.is_dir() and any(out.iterdir()) and not all((out / f).is_file() for f in _SAE_FILES):
        raise InvalidParameterError(
            f"{option} {shown} is a folder that holds other files; pass a new or empty folder "
            "(an existing SAE folder is replaced)."
        )
    for p in inputs:
        if out.resolve() == Path(p).resolve():
            raise InvalidParameterError(f"{option} {shown} is an input of this command.")
    _check_parent(out, option)


def _check_features_out(out: Path, option: str, inputs: tuple[Path, ...]) -> None:
    from .sae.features import is_feature_folder

    shown = repr(str(out))
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"{option} {shown} is a file; pass a folder.")
    if out.is_dir() and any(out.iterdir()) and not is_feature_folder(out):
        raise InvalidParameterError(
            f"{option} {shown} is a folder that holds other files; pass a new or empty folder "
            "(an existing feature-data folder is replaced)."
        )
    for p in inputs:
        if out.resolve() == Path(p).resolve():
            raise InvalidParameterError(f"{option} {shown} is an input of this command.")
    _check_parent(out, option)


def _check_parent(out: Path, option: str) -> None:
    p = out.absolute().parent
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise InvalidParameterError(
            f"{option} {str(out)!r} is inside {str(p)!r}, which is a file; pass another path."
        )
    if not os.access(p, os.W_OK):
        raise InvalidParameterError(f"{option} {str(out)!r}: cannot write in {str(p)!r}.")


def _replace_folder(out: Path, fill: Callable[[Path], Any]) -> None:
    """Write a folder under a temporary name beside ``out`` and rename it into place."""
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = out.absolute().parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fill(tmp)
        if out.exists():
            old = out.absolute().parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _special_ids(tokenizer: Any) -> list[int]:
    return sorted({int(i) for i in getattr(tokenizer, "all_special_ids", []) or []})


def _load_sae(sae_dir: Path, model: Any, site: str | None) -> Any:
    from .sae.io import load

    return load(sae_dir, model=model, site=site).eval()


def _check_sae_dir(sae_dir: Path) -> None:
    if not sae_dir.exists():
        raise InvalidInputError(
            f"SAE folder {str(sae_dir)!r} does not exist; pass a folder written by "
            "whybox sae train (cfg.json + sae_weights.safetensors), a SAELens or sparsify "
            "folder, or a Gemma Scope params.npz."
        )


# ---------------------------------------------------------------------- commands
def train_command(
    model_dir: Path,
    site: str,
    architecture: str,
    width: int,
    k: int | None,
    tokens: int,
    text_file: Path | None,
    pydoc: bool,
    out: Path,
    seed: int,
    batch_size: int,
    lr: float | None,
    context_size: int,
    trust_model: bool,
    device: str,
    *,
    progress: bool = True,
) -> None:
    """``whybox sae train``: the work (errors raised as WhyboxError)."""
    from .sae.models import SAEConfig

    if architecture not in ARCHITECTURE_CHOICES:
        raise InvalidParameterError(
            f"--architecture {architecture!r} is not supported; choose one of "
            f"{', '.join(ARCHITECTURE_CHOICES)}."
        )
    arch = "standard" if architecture == "relu" else architecture
    if k is not None and arch not in _TOPK_FAMILY:
        raise InvalidParameterError(
            f"--k applies to the top-k architectures ({', '.join(_TOPK_FAMILY)}), not "
            f"{architecture!r}; leave it out."
        )
    if arch in _TOPK_FAMILY and k is not None and k > width:
        raise InvalidParameterError(
            f"--k {k} is larger than --width {width}: a token cannot have more active latents "
            f"than there are; pass --k at most {width}."
        )
    if tokens < batch_size:
        raise InvalidParameterError(
            f"--tokens {tokens} is less than one batch (--batch-size {batch_size}); pass more "
            "tokens or a smaller --batch-size."
        )
    if lr is not None and not lr > 0:
        raise InvalidParameterError(f"--lr must be positive, got {lr}.")
    texts = read_texts(text_file, pydoc, "train")
    _check_sae_out(out, "--out", (model_dir,))
    t0 = time.perf_counter()
    model, tokenizer = load_model_folder(model_dir, trust_model, device)
    from .internals.anatomy import Anatomy

    try:  # an unknown site: nothing is trained
        Anatomy.of(model).point(site)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"--site {site!r} is not a site of this model: {exc}") from exc
    SAEConfig(d_in=1, d_sae=width, architecture=arch, k=k if arch in _TOPK_FAMILY else None)
    from ._cli_internals import _quiet
    from .sae.training import train

    with _quiet():  # transformers' "sequence longer than the model" note: rows are cut here
        sae = train(
            model, site=site, architecture=arch, width=width, k=k,
            tokens=texts if Anatomy.of(model).is_causal else encoder_texts(texts),
            tokenizer=tokenizer, total_tokens=tokens, batch_size=batch_size, lr=lr,
            random_state=seed, device=device, progress=progress,
            activation_options={"context_size": context_size},
            model_name=str(model_dir.name),
        )  # fmt: skip
    _replace_folder(out, sae.save)
    last = sae.history[-1] if getattr(sae, "history", None) else {}
    table = Table(title=escape(f"SAE trained on {model_dir.name} at {site}"))
    table.add_column("", style="dim")
    table.add_column("")
    rows = [
        ("architecture", f"{sae.cfg.architecture}" + (f", k {sae.cfg.k}" if sae.cfg.k else "")),
        ("d_in x width", f"{sae.d_in} x {sae.d_sae}"),
        ("tokens", f"{int(last.get('tokens', tokens)):,}"),
    ]
    for key, label in (("l0", "L0"), ("fvu", "FVU"), ("dead_fraction", "dead fraction")):
        if key in last:
            rows.append((label + " (last log)", f"{float(last[key]):.4g}"))
    rows += [("folder", str(out)), ("time", f"{time.perf_counter() - t0:.1f} s")]
    for a, b in rows:
        table.add_row(a, Text(b))
    console.print(table)


def eval_command(
    sae_dir: Path,
    model_dir: Path,
    text_file: Path | None,
    pydoc: bool,
    tokens: int | None,
    json_out: Path | None,
    site: str | None,
    context_size: int,
    batch_size: int,
    trust_model: bool,
    device: str,
    *,
    write: Callable[[Path, Any], Any],
) -> None:
    """``whybox sae eval``: the work (errors raised as WhyboxError)."""
    _check_sae_dir(sae_dir)
    texts = read_texts(text_file, pydoc, "test")
    if json_out is not None:
        check_output_file(json_out, "--json", example="eval.json", inputs=(sae_dir, model_dir))
    t0 = time.perf_counter()
    model, tokenizer = load_model_folder(model_dir, trust_model, device)
    sae = _load_sae(sae_dir, model, site)
    from .internals.anatomy import Anatomy
    from .sae.evaluation import evaluate

    anat = Anatomy.of(model)
    ev = evaluate(
        sae, model, _inputs(texts, tokenizer, anat, tokens), tokenizer=tokenizer,
        context_size=context_size, batch_size=batch_size, anatomy=anat,
    )  # fmt: skip
    if json_out is not None:
        data = json.dumps(ev.to_dict(), indent=1).encode("utf-8")

        def save(p: Path) -> None:
            from ._persist import _atomic_write

            _atomic_write(p, data)

        write(json_out, save)
    console.print(ev)
    if json_out is not None:
        console.print(f"evaluation written to {json_out}", markup=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)


def _tok(token: Any) -> str:
    from .report.internals import show_token

    return "?" if token is None else show_token(token)


def features_command(
    sae_dir: Path,
    model_dir: Path,
    out: Path,
    text_file: Path | None,
    pydoc: bool,
    tokens: int | None,
    show: int,
    n_top: int,
    site: str | None,
    context_size: int,
    trust_model: bool,
    device: str,
) -> None:
    """``whybox sae features``: the work (errors raised as WhyboxError)."""
    _check_sae_dir(sae_dir)
    texts = read_texts(text_file, pydoc, "test")
    _check_features_out(out, "--out", (sae_dir, model_dir))
    t0 = time.perf_counter()
    model, tokenizer = load_model_folder(model_dir, trust_model, device)
    sae = _load_sae(sae_dir, model, site)
    from .internals.anatomy import Anatomy
    from .sae.demo import concept_features
    from .sae.features import feature_data

    anat = Anatomy.of(model)
    fd = feature_data(
        sae, model, _inputs(texts, tokenizer, anat, tokens), tokenizer=tokenizer,
        context_size=context_size, ignore_tokens=_special_ids(tokenizer), n_top=n_top,
        anatomy=anat,
    )  # fmt: skip
    _replace_folder(out, fd.save)
    picked = concept_features(fd, n=show, min_contexts=min(10, n_top)) if show else []
    table = Table(title=escape(f"{len(picked)} latents whose top contexts peak on one token"))
    for col in ("latent", "density", "max act", "top tokens (activating)", "purity", "promotes"):
        table.add_column(
            col, justify="right" if col in ("latent", "density", "max act") else "left"
        )
    for p in picked:
        page = fd.feature(p["latent"])
        promoted = (
            " ".join(_tok(e["token"]) for e in page["logits"]["promoted"][:5])
            if page["logits"]
            else "-"
        )
        table.add_row(
            str(p["latent"]),
            f"{p['density']:.2e}",
            f"{page['max_activation']:.3g}",
            Text(" ".join(_tok(t) for t in p["top_tokens"][:8])),
            f"{p['purity']:.0%} {_tok(p['token'])}",
            Text(promoted),
        )
    if picked:
        console.print(table)
    live = int((fd.array("n_firing") > 0).sum())
    console.print(
        f"feature data of {len(fd)} latents ({live} fired) on {fd.meta['n_tokens']:,} tokens "
        f"written to {out}",
        markup=False,
    )
    console.print(f"({time.perf_counter() - t0:.1f} s)", markup=False)


# ---------------------------------------------------------------------- registration
_MODEL_DIR_HELP = (
    "Folder of a saved transformers model: config.json, *.safetensors weights and the "
    "tokenizer (save_pretrained). Causal LMs are loaded with their head."
)
_SAE_DIR_HELP = (
    "SAE folder (cfg.json + sae_weights.safetensors, as whybox sae train / SAELens write; or "
    "a sparsify folder, or a Gemma Scope params.npz)."
)
_TEXT_HELP = "UTF-8 text file; documents are separated by blank lines."
_PYDOC_HELP = (
    "Use the pydoc topics (offline) as text: training topics for train, held-out ones otherwise."
)
_DEVICE_HELP = "Device to run the model and the SAE on: cpu, cuda, cuda:1, mps."


def register(
    app: typer.Typer,
    *,
    fail: Callable[[Exception], None],
    write: Callable[[Path, Any], Any],
    trust_model: Any,
) -> None:
    """Add the ``sae`` command group (train, eval, features) to the ``whybox`` app.

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
    sae_app = typer.Typer(
        name="sae",
        help="Sparse autoencoders: train one on a model's activations, evaluate it, gather "
        "its features.",
        no_args_is_help=True,
        rich_markup_mode="rich",
    )

    @sae_app.command("train")
    def train(
        model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help=_MODEL_DIR_HELP),
        site: str = typer.Option(
            ...,
            "--site",
            help="Site read: blocks.N.resid_post, blocks.N.mlp.out, ... or a module path.",
        ),
        architecture: str = typer.Option(
            "topk", "--architecture", help="One of " + ", ".join(ARCHITECTURE_CHOICES) + "."
        ),
        width: int = typer.Option(1024, "--width", min=1, help="Number of latents."),
        k: int | None = typer.Option(
            None, "--k", min=1, help="Active latents per token (top-k family; default 32)."
        ),
        tokens: int = typer.Option(1_000_000, "--tokens", min=1, help="Training tokens."),
        text_file: Path | None = typer.Option(None, "--text", help=_TEXT_HELP),
        pydoc: bool = typer.Option(False, "--pydoc", help=_PYDOC_HELP),
        out: Path = typer.Option(..., "--out", help="Folder the SAE is written to."),
        seed: int = typer.Option(0, "--seed", min=0, help="Seed of the weights and shuffle."),
        batch_size: int = typer.Option(4096, "--batch-size", min=1, help="Tokens per step."),
        lr: float | None = typer.Option(
            None, "--lr", help="Learning rate (default 2e-4 / sqrt(width / 2^14))."
        ),
        context_size: int = typer.Option(128, "--context-size", min=1, help="Tokens per row."),
        trust: bool = trust_model,
        device: str = typer.Option("cpu", "--device", help=_DEVICE_HELP),
    ) -> None:
        """Train a sparse autoencoder on a model's activations at one site."""
        try:
            train_command(
                model_dir, site, architecture, width, k, tokens, text_file, pydoc, out, seed,
                batch_size, lr, context_size, trust, device,
            )  # fmt: skip
        except WhyboxError as exc:
            fail(exc)

    @sae_app.command("eval")
    def evaluate(
        sae_dir: Path = typer.Argument(..., metavar="SAE_DIR", help=_SAE_DIR_HELP),
        model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help=_MODEL_DIR_HELP),
        text_file: Path | None = typer.Option(None, "--text", help=_TEXT_HELP),
        pydoc: bool = typer.Option(False, "--pydoc", help=_PYDOC_HELP),
        tokens: int | None = typer.Option(
            None, "--tokens", min=1, help="Evaluate on at most this many tokens."
        ),
        json_out: Path | None = typer.Option(None, "--json", help="Also write the table (JSON)."),
        site: str | None = typer.Option(
            None, "--site", help="Site the SAE reads on this model (default: its cfg.json's)."
        ),
        context_size: int = typer.Option(128, "--context-size", min=1, help="Tokens per row."),
        batch_size: int = typer.Option(8, "--batch-size", min=1, help="Rows per forward pass."),
        trust: bool = trust_model,
        device: str = typer.Option("cpu", "--device", help=_DEVICE_HELP),
    ) -> None:
        """Evaluate an SAE on a model: L0, FVU, CE loss recovered, KL, dead latents."""
        try:
            eval_command(
                sae_dir, model_dir, text_file, pydoc, tokens, json_out, site, context_size,
                batch_size, trust, device, write=write,
            )  # fmt: skip
        except WhyboxError as exc:
            fail(exc)

    @sae_app.command("features")
    def features(
        sae_dir: Path = typer.Argument(..., metavar="SAE_DIR", help=_SAE_DIR_HELP),
        model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help=_MODEL_DIR_HELP),
        out: Path = typer.Option(..., "--out", help="Folder the feature data is written to."),
        text_file: Path | None = typer.Option(None, "--text", help=_TEXT_HELP),
        pydoc: bool = typer.Option(False, "--pydoc", help=_PYDOC_HELP),
        tokens: int | None = typer.Option(
            None, "--tokens", min=1, help="Read at most this many tokens."
        ),
        show: int = typer.Option(5, "--show", min=0, help="Latents printed (one-token ones)."),
        n_top: int = typer.Option(20, "--n-top", min=1, help="Top contexts kept per latent."),
        site: str | None = typer.Option(
            None, "--site", help="Site the SAE reads on this model (default: its cfg.json's)."
        ),
        context_size: int = typer.Option(128, "--context-size", min=1, help="Tokens per row."),
        trust: bool = trust_model,
        device: str = typer.Option("cpu", "--device", help=_DEVICE_HELP),
    ) -> None:
        """Gather every latent's top contexts, histogram and logit effects into a folder."""
        try:
            features_command(
                sae_dir, model_dir, out, text_file, pydoc, tokens, show, n_top, site,
                context_size, trust, device,
            )  # fmt: skip
        except WhyboxError as exc:
            fail(exc)

    app.add_typer(sae_app, name="sae")
    _add_quickstart_flag(app, fail=fail, write=write)


# ---------------------------------------------------------------------- quickstart --sae
def sae_quickstart(path: Path, *, seed: int = 0, log: Callable[[str], Any] = print) -> Any:
    """Write the demo SAEs' page (:func:`whybox.sae.demo.demo_sae` on the tiny GPT-2 and on
    all-MiniLM-L6-v2: evaluation tables, density histograms, feature cards) to ``path``.

    Returns ``(written path, {model: (evaluation, picked latents)})``.
    """
    from .report import Report
    from .report.sae import density_section, evaluation_section, feature_cards_section
    from .sae.demo import demo_sae

    rep = Report(
        title="whybox quickstart: sparse autoencoders",
        subtitle="TopK SAEs on a tiny GPT-2 (pydoc topics) and on all-MiniLM-L6-v2",
    )
    out = {}
    for name, label in (("tiny_lm", "tiny GPT-2"), ("minilm", "all-MiniLM-L6-v2")):
        log(f"{label}: loading the demo SAE (trained on first use, about a minute) ...")
        _, _, _, ev, fd = demo_sae(name, seed=seed)
        picked = sorted(int(j) for j in fd.explanations)
        for sec in (
            evaluation_section(ev, id=f"{name}-evaluation"),
            density_section(ev, id=f"{name}-density"),
            feature_cards_section(fd, picked, n_contexts=5, id=f"{name}-features"),
        ):
            sec["title"] = f"{label}: {sec['title']}"
            rep.add(sec)
        out[name] = (ev, picked)
    return rep.save(path), out


def _add_quickstart_flag(
    app: typer.Typer, *, fail: Callable[[Exception], None], write: Callable[[Path, Any], Any]
) -> None:
    """Add ``--sae`` to the app's ``quickstart`` command (its other options unchanged)."""
    import functools
    import inspect
    import typing

    info = next(
        (c for c in app.registered_commands if (c.name or c.callback.__name__) == "quickstart"),
        None,
    )
    if info is None:
        return
    original = info.callback
    sig = inspect.signature(original, eval_str=True)
    hints = typing.get_type_hints(original)
    option = typer.Option(
        False,
        "--sae",
        help="Instead: TopK sparse autoencoders on a tiny GPT-2 and on all-MiniLM-L6-v2 "
        "(trained on first use), their evaluation tables and one-concept features.",
    )
    params = [
        *sig.parameters.values(),
        inspect.Parameter("sae", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=bool),
    ]

    @functools.wraps(original)
    def quickstart(**kwargs: Any) -> None:
        if not kwargs.pop("sae", False):
            return original(**kwargs)
        from ._cli_inputs import check_output_report

        box: dict[str, Any] = {}
        try:
            others = [f"--{k}" for k in ("text", "vision") if kwargs.get(k)]
            if others:
                raise InvalidParameterError(
                    f"--sae and {' and '.join(others)} are different quickstarts; pass one."
                )
            target = check_output_report(kwargs["out"], "--out")

            def save(p: Path) -> None:
                box["path"], box["res"] = sae_quickstart(
                    p, seed=kwargs.get("seed", 0), log=lambda m: console.print(m, markup=False)
                )

            write(target, save)
        except WhyboxError as exc:
            fail(exc)
            return None
        table = Table(title="whybox quickstart --sae")
        for col in ("model", "site", "L0", "FVU", "CE loss recovered", "dead fraction"):
            table.add_column(col)
        for name, (ev, _) in box["res"].items():
            ce = "-" if ev.ce_loss_score is None else f"{ev.ce_loss_score:.3f}"
            table.add_row(
                name, ev.site, f"{ev.l0:.1f}", f"{ev.fvu:.3f}", ce, f"{ev.dead_fraction:.3f}"
            )
        console.print(table)
        console.print(f"report written to {box['path']}", markup=False)
        return None

    quickstart.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    quickstart.__annotations__ = {**hints, "sae": bool}
    quickstart.__doc__ = (original.__doc__ or "") + (
        "\n\n    With --sae: TopK sparse autoencoders on a tiny GPT-2 and on all-MiniLM-L6-v2, "
        "their evaluation tables, feature densities and features whose top contexts are "
        "one token."
    )
    info.callback = quickstart
