"""Evaluate a sparse autoencoder (or transcoder) on a model: one table, as SAELens reports it.

:func:`evaluate` reads the activation the SAE was trained on from the model's forward pass
(scoped hooks, :mod:`whybox.internals.hooks`) and reports sparsity (L0, dead and dense
latents, feature density), reconstruction (MSE, FVU = normalised MSE, explained variance,
cosine, shrinkage) and downstream loss: next-token cross-entropy and KL divergence with the
reconstruction spliced in, against zero- and mean-ablation baselines (CE loss recovered).
Metric names and groups are those of ``sae_lens.evals.run_evals`` (``ce_loss_score``,
``kl_div_with_sae``, ``relative_reconstruction_bias``, ...), so tables can be compared.

Positions are excluded in one way everywhere: padding and, with ``exclude_special``, special
tokens (BOS / EOS / PAD / CLS / SEP) add to no metric and keep their clean activation in every
spliced or ablated run (the BOS position of many models holds an outsized "attention sink"
activation whose ablation would dominate the loss).

References
----------
Bricken, T. et al. (2023). Towards monosemanticity: decomposing language models with
dictionary learning. Transformer Circuits Thread. (CE loss recovered, feature density.)
Cunningham, H., Ewart, A., Riggs, L., Huben, R. & Sharkey, L. (2024). Sparse autoencoders find
highly interpretable features in language models. ICLR.
Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
(Normalised MSE, downstream loss, dead latents.)
Rajamanoharan, S. et al. (2024). Improving dictionary learning with gated sparse
autoencoders. arXiv:2404.16014. (Relative reconstruction bias, eq. 10.)
Bloom, J., Tigges, C., Duong, A. & Chanin, D. (2024). SAELens. ``sae_lens/evals.py``.
Karvonen, A. et al. (2025). SAEBench: a comprehensive benchmark for sparse autoencoders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
    WhyboxError,
)
from whybox.internals import hooks
from whybox.sae._eval_metrics import _kl, _ratio, _recon_metrics, _Sums, _token_losses

__all__ = ["SAEEvaluation", "evaluate"]

#: the table's groups, in SAELens' names, and the fields in each
GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(names.split())
    for group, names in {
        "model_behavior_preservation": "kl_div_score kl_div_with_ablation kl_div_with_sae "
        "kl_div_score_mean_ablation kl_div_with_mean_ablation",
        "model_performance_preservation": "ce_loss_score ce_loss_with_ablation ce_loss_with_sae "
        "ce_loss_without_sae ce_loss_score_mean_ablation ce_loss_with_mean_ablation",
        "reconstruction_quality": "explained_variance fvu mse cossim",
        "shrinkage": "l2_norm_in l2_norm_out l2_ratio relative_reconstruction_bias",
        "sparsity": "l0 l1 dead_fraction dense_fraction",
        "token_stats": "n_tokens n_predictions n_sequences",
    }.items()
}


@dataclass
class SAEEvaluation:
    """Evaluation metrics of an SAE on a model (made by ``whybox.sae.evaluate``).

    Parameters
    ----------
    site, site_out : str
        Where the SAE reads its input, and where its output is compared and spliced in
        (the same for an autoencoder; the predicted site for a transcoder).
    d_sae : int
        Number of latents.
    n_tokens : int
        Evaluated (not excluded) positions: the denominator of the reconstruction and
        sparsity metrics.
    n_predictions : int
        Next-token predictions scored by the CE losses (0 without a next-token loss).
    n_sequences : int
        Rows of the evaluation batch.
    l0, l1 : float
        Mean number of non-zero latents per token, mean sum of latent activations.
    mse : float
        Mean over tokens of ``||y - y_hat||^2`` (summed over the ``d_out`` dimensions).
    fvu : float
        ``sum ||y - y_hat||^2 / sum ||y - mean(y)||^2`` over the tokens (normalised MSE).
    explained_variance : float
        ``1 - fvu``.
    cossim : float
        Mean over tokens of the cosine of ``y`` and ``y_hat``.
    l2_norm_in, l2_norm_out, l2_ratio : float
        Mean ``||y||``, mean ``||y_hat||`` and mean ``||y_hat|| / ||y||`` (a norm under 1e-4
        counts as 1, as in SAELens).
    relative_reconstruction_bias : float
        ``mean ||y_hat||^2 / mean <y, y_hat>``; 1 for an unbiased reconstruction, below 1
        for a shrunk one (Rajamanoharan et al. 2024, eq. 10).
    ce_loss_without_sae, ce_loss_with_sae : float or None
        Mean next-token cross-entropy (nats) clean and with the SAE spliced in; None for a
        model without a next-token loss (see ``notes``).
    ce_loss_with_ablation, ce_loss_with_mean_ablation : float or None
        The same with the site zero-ablated and mean-ablated.
    ce_loss_score, ce_loss_score_mean_ablation : float or None
        CE loss recovered against zero- and mean-ablation:
        ``(CE_ablated - CE_sae) / (CE_ablated - CE_clean)``.
    kl_div_with_sae, kl_div_with_ablation, kl_div_with_mean_ablation : float or None
        Mean ``KL(p_clean || p_run)`` of the output distributions over the evaluated
        positions.
    kl_div_score, kl_div_score_mean_ablation : float or None
        ``(KL_ablated - KL_sae) / KL_ablated``.
    dead_fraction, dense_fraction : float
        Fraction of latents never active on the evaluation tokens, and active on more than
        ``dense_threshold`` of them.
    dense_threshold : float
        Density above which a latent counts as dense.
    feature_density : ndarray (d_sae,)
        Fraction of evaluated tokens on which each latent is active.
    density_histogram : dict
        ``{"log10_density_edges": [...], "counts": [...], "n_dead": int}``: histogram of
        ``log10(feature_density)`` of the latents that fired (dead ones are counted apart).
    notes : tuple of str, default ()
        Why a metric is None, and other remarks.

    Examples
    --------
    >>> ev = wb.sae.demo_sae().evaluation          # a TopK SAE (k=16) on the tiny GPT-2
    >>> ev.site, ev.l0                              # a TopK SAE's L0 is its k
    ('blocks.2.resid_post', 16.0)
    >>> bool(ev.explained_variance == 1 - ev.fvu), 0.9 < ev.ce_loss_score <= 1
    (True, True)
    >>> ev.to_frame().columns.tolist()
    ['group', 'metric', 'value']

    References
    ----------
    Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
    Bloom, J., Tigges, C. & Chanin, D. (2024). SAELens, ``evals.run_evals`` (the metric names).
    """

    site: str
    site_out: str
    d_sae: int
    n_tokens: int
    n_predictions: int
    n_sequences: int
    l0: float
    l1: float
    mse: float
    fvu: float
    explained_variance: float
    cossim: float
    l2_norm_in: float
    l2_norm_out: float
    l2_ratio: float
    relative_reconstruction_bias: float
    dead_fraction: float
    dense_fraction: float
    dense_threshold: float
    feature_density: np.ndarray = field(repr=False)
    density_histogram: dict[str, Any] = field(repr=False)
    ce_loss_without_sae: float | None = None
    ce_loss_with_sae: float | None = None
    ce_loss_with_ablation: float | None = None
    ce_loss_with_mean_ablation: float | None = None
    ce_loss_score: float | None = None
    ce_loss_score_mean_ablation: float | None = None
    kl_div_with_sae: float | None = None
    kl_div_with_ablation: float | None = None
    kl_div_with_mean_ablation: float | None = None
    kl_div_score: float | None = None
    kl_div_score_mean_ablation: float | None = None
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------------ views ----
    def metrics(self) -> dict[str, dict[str, Any]]:
        """The scalar metrics grouped as ``sae_lens.evals.run_evals`` groups them."""
        return {
            group: {name: getattr(self, name) for name in names} for group, names in GROUPS.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable): ``metrics`` by group, ``feature_metrics``
        (``feature_density`` per latent), ``density_histogram``, the sites and ``notes``."""
        return {
            "site": self.site,
            "site_out": self.site_out,
            "d_sae": self.d_sae,
            "dense_threshold": self.dense_threshold,
            "metrics": self.metrics(),
            "feature_metrics": {"feature_density": self.feature_density.tolist()},
            "density_histogram": dict(self.density_histogram),
            "notes": list(self.notes),
        }

    def to_frame(self) -> Any:
        """One row per scalar metric: a pandas DataFrame with columns group, metric, value."""
        import pandas as pd

        rows = [(g, name, getattr(self, name)) for g, names in GROUPS.items() for name in names]
        return pd.DataFrame(rows, columns=["group", "metric", "value"])

    def _lines(self) -> list[tuple[str, str, str]]:
        return [
            (group, name, _fmt(getattr(self, name)))
            for group, names in GROUPS.items()
            for name in names
        ]

    def _title(self) -> str:
        out = f" -> {self.site_out}" if self.site_out != self.site else ""
        return f"SAE evaluation at {self.site}{out}"

    def __str__(self) -> str:
        title = self._title()
        lines = self._lines()
        w0 = max(len(g) for g, _, _ in lines)
        w1 = max(len(m) for _, m, _ in lines)
        out = [title, "-" * len(title)]
        last = None
        for group, name, value in lines:
            out.append(f"{group if group != last else '':<{w0}}  {name:<{w1}}  {value}")
            last = group
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=self._title(), caption="\n".join(self.notes) or None)
        table.add_column("group", style="dim")
        table.add_column("metric")
        table.add_column("value", justify="right")
        last = None
        for group, name, value in self._lines():
            table.add_row(group if group != last else "", name, value)
            last = group
        return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{float(value):.6g}"


# ------------------------------------------------------------------------------ inputs ----
def _special_ids(model: Any, tokenizer: Any, exclude_special: Any) -> set[int]:
    if exclude_special is False or exclude_special is None:
        return set()
    if exclude_special is True:
        if tokenizer is not None:
            return {int(i) for i in getattr(tokenizer, "all_special_ids", []) or []}
        config = getattr(model, "config", None)
        names = ("bos_token_id", "eos_token_id", "pad_token_id", "cls_token_id", "sep_token_id")
        values = [getattr(config, name, None) for name in names]
        return {int(v) for v in values if isinstance(v, int) and not isinstance(v, bool)}
    ok = isinstance(exclude_special, Iterable) and not isinstance(exclude_special, str | bytes)
    items = list(exclude_special) if ok else []
    if ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items):
        return {int(v) for v in items}
    raise InvalidParameterError(
        f"exclude_special must be True (the tokenizer's special tokens), False (keep every "
        f"position) or an iterable of token ids, got {exclude_special!r}."
    )


def _tokenize(torch: Any, texts: list[str], tokenizer: Any, context_size: int) -> dict[str, Any]:
    if tokenizer is None:
        raise InvalidInputError(
            "evaluate got text but no tokenizer: pass tokenizer= (the model's tokenizer), or "
            "pass token ids (a LongTensor (batch, pos) or a tokenizer's BatchEncoding)."
        )
    enc = tokenizer(texts, truncation=True, max_length=context_size)
    rows = [list(r) for r in enc["input_ids"] if len(r)]
    if not rows:
        raise InvalidInputError("the texts tokenize to no tokens: pass non-empty texts.")
    width = max(len(r) for r in rows)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = int(pad) if isinstance(pad, int) else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": attn}


def _as_kwargs(
    torch: Any, model: Any, inputs: Any, tokenizer: Any, context_size: int, vocab: Any
) -> dict[str, Any]:
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, Sequence) and inputs and all(isinstance(t, str) for t in inputs):
        kwargs = _tokenize(torch, list(inputs), tokenizer, context_size)
    elif isinstance(inputs, torch.Tensor) and inputs.ndim == 1:
        # a token stream: windows of context_size (the last, shorter one kept)
        width = max(1, min(context_size, int(inputs.numel())))
        tail = inputs.new_zeros((-inputs.numel()) % width)
        kwargs = {
            "input_ids": torch.cat([inputs, tail]).view(-1, width),
            "attention_mask": torch.cat([torch.ones_like(inputs), tail]).view(-1, width),
        }
    elif isinstance(inputs, torch.Tensor | Mapping):
        kwargs = dict(inputs) if isinstance(inputs, Mapping) else {"input_ids": inputs}
    else:
        raise InvalidInputError(
            f"inputs must be texts (a list of str, with tokenizer=), token ids (a LongTensor "
            f"(batch, pos), or 1-D: a token stream cut into context_size windows) or a "
            f"tokenizer's BatchEncoding, got {type(inputs).__name__}."
        )
    kwargs = hooks.as_model_inputs(model, kwargs, vocab_size=vocab)
    if not isinstance(kwargs.get("input_ids"), torch.Tensor):
        raise InvalidInputError(
            "inputs need input_ids (token ids): evaluate reads them to exclude special and "
            "padding positions and to score next-token predictions."
        )
    return kwargs


# ------------------------------------------------------------------------- the SAE ----
def _sae_parts(sae: Any, site: str | None, site_out: str | None) -> tuple[Any, ...]:
    cfg = getattr(sae, "cfg", None)
    if not (callable(getattr(sae, "encode", None)) and callable(getattr(sae, "decode", None))):
        raise InvalidParameterError(
            f"sae must be a whybox SAE (wb.sae.load(folder) or SAE.create(cfg)) with encode and "
            f"decode, got {type(sae).__name__}."
        )
    d_in = int(getattr(cfg, "d_in", 0) or sae.W_enc.shape[0])
    d_sae = int(getattr(cfg, "d_sae", 0) or sae.W_enc.shape[1])
    d_out = int(getattr(cfg, "d_out", None) or sae.W_dec.shape[1])
    site = site if site is not None else getattr(cfg, "hook_name", None)
    if site is None:
        raise InvalidParameterError(
            "the SAE's config names no site (cfg.hook_name is None): pass site= the hook name it "
            "was trained on, such as 'blocks.3.resid_post'."
        )
    out = site_out if site_out is not None else getattr(cfg, "hook_name_out", None)
    return site, (out if out is not None else site), d_in, d_sae, d_out


def _flat(view: Any) -> Any:
    """(batch, pos, d) from a site's view; (batch, pos, heads, d_head) is flattened."""
    return view.flatten(2) if view.ndim == 4 else view


# -------------------------------------------------------------------------- running ----
class _Stop(Exception):
    """Raised by a hook to end a forward pass once the site has been read."""


def _call(model: Any, kwargs: dict[str, Any], torch: Any) -> Any:
    with torch.no_grad():
        try:
            return model(**kwargs)
        except (WhyboxError, _Stop):
            raise
        except Exception as exc:
            shapes = {k: tuple(v.shape) for k, v in kwargs.items() if hasattr(v, "shape")}
            raise ModelCallError(
                f"the model raised {type(exc).__name__}: {exc} (inputs {shapes})."
            ) from exc


def _vocab_logits(output: Any, vocab: Any, torch: Any) -> Any:
    """The output's logits over the vocabulary, or None (a bare encoder's hidden states)."""
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, torch.Tensor):
        logits = output
    ok = isinstance(logits, torch.Tensor) and logits.ndim == 3 and logits.shape[-1] == vocab
    return logits if ok else None


def evaluate(
    sae: Any,
    model: Any,
    inputs: Any,
    *,
    site: str | None = None,
    site_out: str | None = None,
    tokenizer: Any = None,
    context_size: int = 128,
    batch_size: int = 8,
    anatomy: Any = None,
    exclude_special: bool | Iterable[int] = True,
    dense_threshold: float = 0.1,
    n_batches: int | None = None,
    random_state: Any = 0,
    progress: Callable[[int, int], Any] | None = None,
) -> SAEEvaluation:
    """Evaluate ``sae`` on ``model``: sparsity, reconstruction and downstream loss.

    Parameters
    ----------
    sae : whybox SAE
        With ``encode`` / ``decode``; ``sae.cfg.hook_name`` (and ``hook_name_out`` for a
        transcoder) name its sites.
    model : torch.nn.Module
        A ``transformers`` model (or any model :class:`~whybox.internals.anatomy.Anatomy`
        understands).
    inputs : list of str, LongTensor or mapping
        Texts (tokenized with ``tokenizer``, one row each, truncated to ``context_size``), token
        ids ``(batch, pos)``, a 1-D token stream (cut into rows of ``context_size``) or a
        tokenizer's ``BatchEncoding`` (its ``attention_mask`` marks padding).
    site : str, optional
        Hook name the SAE reads (default ``sae.cfg.hook_name``): a standard name
        (``"blocks.3.resid_post"``), a TransformerLens name or a module path.
    site_out : str, optional
        For a transcoder, the site it predicts (default ``sae.cfg.hook_name_out``, else
        ``site``): the reconstruction is compared with, and spliced in at, this site.
    tokenizer : tokenizer, optional
        Needed for text; its special tokens are excluded with ``exclude_special``.
    context_size : int, default 128
        Tokens per row for text and token streams.
    batch_size : int, default 8
        Rows per forward pass.
    anatomy : Anatomy, optional
        ``Anatomy.of(model)`` when None.
    exclude_special : bool or iterable of int, default True
        Leave out the positions holding special tokens (the tokenizer's, else the model
        config's BOS / EOS / PAD / CLS / SEP ids), or the given ids; padding is always left
        out.
    dense_threshold : float, default 0.1
        A latent active on more than this fraction of tokens counts as dense.
    n_batches : int, optional
        Evaluate at most ``n_batches * batch_size`` rows, drawn at random (seeded by
        ``random_state``) when there are more.
    random_state : int, Generator or None, default 0
        Seeds the choice of rows when ``n_batches`` limits the evaluation.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch (for a progress bar).

    Returns
    -------
    SAEEvaluation
        Scalar metrics (``.to_frame()``, ``.to_dict()``, printable), per-latent densities and
        their histogram.

    Raises
    ------
    InvalidInputError
        The SAE's ``d_in`` (or a transcoder's ``d_out``) differs from the width of its site
        in this model (both widths named); text without a tokenizer; no position left after
        exclusions.
    InvalidParameterError
        An unknown site, bad ``batch_size`` / ``context_size`` / ``dense_threshold``.

    Notes
    -----
    Four forward passes per batch (clean, spliced, zero- and mean-ablated) after one that
    stops at the site to take the mean activation. The reconstruction spliced in is
    ``decode(encode(x))`` of the clean pass's ``x``. Excluded positions keep their clean
    activation in every run (SAELens zero-ablates them too). CE scores the prediction made
    at an evaluated position of the next real (not padding) token; KL is taken at every
    evaluated position. A bare encoder gets None for CE and KL, a masked-LM head KL only.

    ``mse`` (squared error summed over dimensions, mean over tokens), ``explained_variance``
    (``1 - FVU``), ``l0`` (non-zero latents) and ``l1`` (sum of absolute activations) are
    SAELens 6.54's definitions: on the same SAE and tokens every shared metric equals
    ``sae_lens.evals.run_evals``' to about 1e-7 (tested). Older SAELens releases (6.18)
    divided ``mse`` once more by the token count and subtracted the mean of ``x**2`` in the
    explained variance.

    References
    ----------
    .. [1] Gao et al. (2024), Scaling and evaluating sparse autoencoders, section 2.
    .. [2] Bricken et al. (2023), Towards monosemanticity (loss recovered, feature density).
    .. [3] Rajamanoharan et al. (2024), Gated SAEs, eq. 10 (relative reconstruction bias).

    Examples
    --------
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()
    >>> texts = wb.zoo.tiny_lm_corpus("test")[:2]
    >>> table = wb.sae.evaluate(sae, model, texts, tokenizer=tok)   # one row per text
    >>> table.l0, table.n_tokens, 0.9 < table.ce_loss_score <= 1
    (16.0, 256, True)
    """
    torch = hooks.require_torch("wb.sae.evaluate")
    from whybox.internals.anatomy import Anatomy

    anat = Anatomy.for_model(model, anatomy)
    context_size = check_int("context_size", context_size, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if n_batches is not None:
        n_batches = check_int("n_batches", n_batches, minimum=1)
    if isinstance(dense_threshold, bool) or not isinstance(dense_threshold, int | float):
        raise InvalidParameterError(f"dense_threshold must be a number, got {dense_threshold!r}.")
    if not 0.0 <= dense_threshold <= 1.0:
        raise InvalidParameterError(
            f"dense_threshold must be a fraction of tokens in [0, 1], got {dense_threshold}."
        )
    rng = check_random_state(random_state)
    if progress is not None and not callable(progress):
        raise InvalidParameterError(
            f"progress must be a function progress(done, total) or None, got {progress!r}."
        )
    site, site_out, d_in, d_sae, d_out = _sae_parts(sae, site, site_out)
    p_in, p_out = anat.point(site), anat.point(site_out)
    specials = _special_ids(model, tokenizer, exclude_special)
    kwargs = _as_kwargs(torch, model, inputs, tokenizer, context_size, anat.vocab_size)

    ids = kwargs["input_ids"]
    n = int(ids.shape[0])
    attn = kwargs.get("attention_mask")
    real = attn.bool() if isinstance(attn, torch.Tensor) else torch.ones_like(ids, dtype=torch.bool)
    keep = real.clone()
    for s in specials:
        keep &= ids != s
    rows = np.arange(n)
    if n_batches is not None and n_batches * batch_size < n:
        rows = np.sort(rng.choice(n, size=n_batches * batch_size, replace=False))
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    if not bool(keep[torch.as_tensor(rows)].any()):
        raise InvalidInputError(
            "no position is left to evaluate: every token is padding or a special token. Pass "
            "longer inputs, or exclude_special=False to keep special tokens."
        )

    job = _Job(
        torch, sae, model, anat, kwargs, keep, real, batches, p_in, p_out, site, site_out,
        (d_in, d_sae, d_out),
    )  # fmt: skip
    was_training = (bool(model.training), bool(getattr(sae, "training", False)))
    model.eval()
    if hasattr(sae, "eval"):
        sae.eval()
    try:
        return _run(job, dense_threshold, len(rows), progress)
    finally:
        model.train(was_training[0])
        if hasattr(sae, "train"):
            sae.train(was_training[1])


def _check_width(name: str, what: str, expected: int, got: int, cfg_site: str) -> None:
    if got != expected:
        raise InvalidInputError(
            f"the SAE's {what} is {expected} but the site {name!r} of this model carries "
            f"{got}-wide activations: the SAE does not fit this site. Pass site= (and "
            f"site_out= for a transcoder) the site it was trained on (its config says "
            f"{cfg_site!r}), or an SAE trained on this model."
        )


@dataclass
class _Job:
    """What one evaluation runs on (built and checked by :func:`evaluate`)."""

    torch: Any
    sae: Any
    model: Any
    anat: Any
    kwargs: dict[str, Any]
    keep: Any  # (rows, pos) bool: evaluated positions
    real: Any  # (rows, pos) bool: not padding
    batches: list[Any]
    p_in: Any
    p_out: Any
    site: str
    site_out: str
    dims: tuple[int, int, int]  # d_in, d_sae, d_out

    def part(self, index: Any) -> tuple[Any, dict[str, Any], Any]:
        """Row indices, model keyword arguments and evaluated-position mask of a batch."""
        torch = self.torch
        idx = torch.as_tensor(index)
        n = int(self.kwargs["input_ids"].shape[0])
        part = {
            k: v[idx] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v
            for k, v in self.kwargs.items()
        }
        return idx, part, self.keep[idx].to(part["input_ids"].device)


def _run(job: _Job, dense_threshold: float, n_rows: int, progress: Any) -> SAEEvaluation:
    torch, sae, model, anat = job.torch, job.sae, job.model, job.anat
    p_in, p_out, site, site_out = job.p_in, job.p_out, job.site, job.site_out
    d_in, d_sae, d_out = job.dims
    sae_device, sae_dtype = sae.W_enc.device, sae.W_enc.dtype
    cfg_site = str(getattr(getattr(sae, "cfg", None), "hook_name", None))
    same = p_in == p_out
    notes: list[str] = []
    sums = _Sums(d_sae)
    down: dict[str, float] = {}
    mode: str | None = None  # "causal", "kl" or "none": decided on the first clean pass
    mean_out: Any = None

    for b, index in enumerate(job.batches):
        idx, part, mask = job.part(index)
        got: dict[str, Any] = {}

        def read_in(view: Any, got: dict = got) -> None:
            x = _flat(view)
            _check_width(site, "d_in (input width)", d_in, int(x.shape[-1]), cfg_site)
            got["x"] = x.detach().clone()

        def read_out(view: Any, got: dict = got) -> None:
            if "x" not in got:
                raise InvalidParameterError(
                    f"the site {site_out!r} runs before {site!r} in the forward pass: a "
                    "transcoder must read a site that comes before the one it predicts."
                )
            y = _flat(view)
            _check_width(site_out, "d_out (output width)", d_out, int(y.shape[-1]), cfg_site)
            got["y"] = y.detach().clone()

        fns = [(p_in, read_in)] if same else [(p_in, read_in), (p_out, read_out)]
        with hooks.on_points(model, fns):
            output = _call(model, part, torch)
        if "x" not in got or not (same or "y" in got):
            raise UnsupportedModelError(
                f"the site {site!r} (or {site_out!r}) was not reached in the forward pass: "
                "name a site this model computes on every call (Anatomy.of(model).names())."
            )
        x = got["x"]
        y = x if same else got["y"]
        if tuple(x.shape[:2]) != tuple(mask.shape) or tuple(y.shape[:2]) != tuple(mask.shape):
            raise UnsupportedModelError(
                f"the site {site!r} carries activations of shape {tuple(x.shape)}, not "
                f"(batch, pos, d) with (batch, pos) = {tuple(mask.shape)}: evaluate needs "
                "a per-token site (residual stream, attention or MLP output, q/k/v, ...)."
            )
        if b == 0:
            logits = _vocab_logits(output, anat.vocab_size, torch)
            if logits is None:
                mode = "none"
                notes.append(
                    "the model's output is not a distribution over its vocabulary (a bare "
                    "encoder): CE and KL metrics are None; the reconstruction metrics stand."
                )
            elif anat.is_causal:
                mode = "causal"
            else:
                mode = "kl"
                notes.append(
                    "an encoder has no next-token loss: CE metrics are None; the KL "
                    "divergences compare its (masked-LM head's) output distributions."
                )
            if mode != "none":
                mean_out = _mean_pass(job)

        # reconstruction and sparsity on the evaluated positions
        xs = x[mask].to(device=sae_device, dtype=sae_dtype)
        with torch.no_grad():
            f = sae.encode(xs)
            y_hat = sae.decode(f)
        ys = y[mask].to(device=sae_device)
        _recon_metrics(sums, ys, y_hat, f, torch)
        if mode != "none":
            _downstream(job, part, idx, mask, output, y, y_hat, mean_out, mode == "causal", down)
        if progress is not None:
            progress(b + 1, len(job.batches))

    return _assemble(sums, down, mode, notes, job, dense_threshold, n_rows)


def _downstream(
    job: _Job, part: dict[str, Any], idx: Any, mask: Any, output: Any, y: Any, y_hat: Any,
    mean_out: Any, causal: bool, down: dict[str, float],
) -> None:  # fmt: skip
    """Add one batch's CE and KL sums (clean, spliced, zero- and mean-ablated) to ``down``."""
    torch, model = job.torch, job.model
    logits = _vocab_logits(output, job.anat.vocab_size, torch)
    clean_logp = torch.log_softmax(logits.float(), dim=-1)
    clean = (clean_logp, clean_logp.exp())
    spliced = y.clone()
    spliced[mask] = y_hat.to(device=y.device, dtype=y.dtype)
    m3 = mask[..., None]
    runs = {
        "sae": spliced,
        "ablation": torch.where(m3, torch.zeros_like(y), y),
        "mean_ablation": torch.where(m3, mean_out.to(device=y.device, dtype=y.dtype), y),
    }

    def add(key: str, value: Any) -> None:
        down[key] = down.get(key, 0.0) + float(value)

    tok = part["input_ids"]
    pred = mask[:, :-1] & job.real[idx][:, 1:].to(mask.device)
    if causal:
        add("ce_clean", _token_losses(logits, tok, torch)[pred].double().sum())
        add("n_pred", pred.sum())
    add("n_kl", mask.sum())
    for name, value in runs.items():

        def put(view: Any, value: Any = value) -> Any:
            return value.reshape(view.shape)

        with hooks.on_points(model, [(job.p_out, put)]):
            run_logits = _vocab_logits(_call(model, part, torch), job.anat.vocab_size, torch)
        add(f"kl_{name}", _kl(clean, run_logits, torch)[mask].double().sum())
        if causal:
            add(f"ce_{name}", _token_losses(run_logits, tok, torch)[pred].double().sum())


def _mean_pass(job: _Job) -> Any:
    """The mean activation at ``p_out`` over the evaluated positions of every batch, from
    forward passes stopped as soon as the site has been read."""
    torch = job.torch
    total = torch.zeros(job.dims[2], dtype=torch.float64)
    count = 0
    for index in job.batches:
        _, part, mask = job.part(index)

        def read(view: Any, mask: Any = mask) -> None:
            nonlocal total, count
            y = _flat(view)[mask].double()
            total = total + y.sum(0).cpu()
            count += int(y.shape[0])
            raise _Stop

        try:
            with hooks.on_points(job.model, [(job.p_out, read)]):
                _call(job.model, part, torch)
        except _Stop:
            pass
    return total / max(count, 1)


def _assemble(
    sums: _Sums, down: dict[str, float], mode: str | None, notes: list[str], job: _Job,
    dense_threshold: float, n_rows: int,
) -> SAEEvaluation:  # fmt: skip
    n, s = sums.n, sums.s
    n_pred, n_kl = int(down.get("n_pred", 0)), int(down.get("n_kl", 0))
    density = sums.fired / max(n, 1)
    fvu = _ratio(s["sse"], sums.m2)
    lit = density[density > 0]
    lo = math.floor(math.log10(1.0 / max(n, 1))) if n else -1
    edges = np.linspace(min(lo, -1), 0.0, 41)
    counts, _ = np.histogram(np.log10(lit), bins=edges) if lit.size else (np.zeros(40), None)
    result: dict[str, Any] = dict(
        site=job.site,
        site_out=job.site_out,
        d_sae=job.dims[1],
        n_tokens=n,
        n_predictions=n_pred,
        n_sequences=n_rows,
        l0=s["l0"] / n,
        l1=s["l1"] / n,
        mse=s["sse"] / n,
        fvu=fvu,
        explained_variance=1.0 - fvu,
        cossim=s["cos"] / n,
        l2_norm_in=s["norm_in"] / n,
        l2_norm_out=s["norm_out"] / n,
        l2_ratio=s["ratio"] / n,
        relative_reconstruction_bias=_ratio(s["out_sq"], s["dot"]),
        dead_fraction=float((sums.fired == 0).mean()),
        dense_fraction=float((density > dense_threshold).mean()),
        dense_threshold=float(dense_threshold),
        feature_density=density,
        density_histogram={
            "log10_density_edges": edges.tolist(),
            "counts": [int(c) for c in counts],
            "n_dead": int((sums.fired == 0).sum()),
        },
    )
    runs = ("sae", "ablation", "mean_ablation")
    if mode == "causal" and n_pred == 0:
        notes.append("no next-token prediction was left to score: CE metrics are None.")
    for kind, total, prefix, clean in (
        ("kl", n_kl, "kl_div", 0.0),
        ("ce", n_pred, "ce_loss", down.get("ce_clean", 0.0) / max(n_pred, 1)),
    ):
        if mode not in ("causal", "kl") or total == 0 or (kind == "ce" and mode != "causal"):
            continue
        v = {k: down[f"{kind}_{k}"] / total for k in runs}
        for k in runs:
            result[f"{prefix}_with_{k}"] = v[k]
        for base, suffix in (("ablation", ""), ("mean_ablation", "_mean_ablation")):
            result[f"{prefix}_score{suffix}"] = _ratio(v[base] - v["sae"], v[base] - clean)
        if kind == "ce":
            result["ce_loss_without_sae"] = clean
    result["notes"] = tuple(notes)
    known = {f.name for f in fields(SAEEvaluation)}
    return SAEEvaluation(**{k: v for k, v in result.items() if k in known})
