"""Global description of a fitted explainable boosting machine: its terms and shape functions.

``EBMGlobal`` is what ``explain_global()`` returns: the intercept and one :class:`EBMTerm` per
additive term (main effects and pairs), each with its per-bin scores, the standard deviation
of those scores across the outer bags (the error bars), the training rows per bin, and
readable bin labels. ``importance()`` is interpret's "avg_weight" term importance, the mean
absolute contribution of a term over the training rows; ``to_explanation()`` turns the
importances into a one-row :class:`~whybox.explanation.Explanation`, so the global view plots
and reports like any other explanation.

References
----------
Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidParameterError
from ..explanation import Explanation

__all__ = ["EBMGlobal", "EBMTerm", "avg_weight_importance"]


def avg_weight_importance(scores: np.ndarray, weights: np.ndarray) -> float:
    """interpret's "avg_weight" importance of one term: ``sum w |s| / sum w`` over its bins
    (cells), the absolute scores first averaged over classes when ``scores`` has a trailing
    class axis (shape ``weights.shape + (k,)``); 0 for a term without weight."""
    a = np.abs(np.asarray(scores, dtype=float))
    w = np.asarray(weights, dtype=float)
    if a.ndim > w.ndim:
        a = a.mean(axis=-1)
    return float((w * a).sum() / w.sum()) if w.sum() > 0 else 0.0


_TEXT: dict[str, Any] = {"parse_math": False, "usetex": False}


@dataclass(frozen=True)
class EBMTerm:
    """One additive term of an EBM.

    Attributes
    ----------
    name : str
        ``"income"`` for a main effect, ``"age & income"`` for a pair.
    features : tuple of str
        The term's features (one or two).
    kinds : tuple of str
        ``"continuous"`` or ``"nominal"`` per feature.
    bin_labels : tuple of list of str
        Per feature, the label of each bin (``"missing"``, intervals or categories, ``"unseen"``).
    cuts : tuple of ndarray
        Per feature, the cut points of its bins (empty for nominal features).
    scores : ndarray of shape (n_bins,) or (n_bins_a, n_bins_b)
        Contribution to the decision function of a row falling in each bin (cell).
    std : ndarray, same shape as scores
        Standard deviation of the scores across the outer bags.
    weights : ndarray, same shape as scores
        Training rows in each bin (cell).
    """

    name: str
    features: tuple[str, ...]
    kinds: tuple[str, ...]
    bin_labels: tuple[list[str], ...]
    cuts: tuple[np.ndarray, ...]
    scores: np.ndarray
    std: np.ndarray
    weights: np.ndarray

    @property
    def is_pair(self) -> bool:
        return len(self.features) == 2

    @property
    def importance(self) -> float:
        """Mean absolute contribution over the training rows: ``sum w |s| / sum w``."""
        return avg_weight_importance(self.scores, self.weights)

    @property
    def n_classes(self) -> int:
        """Classes of a multiclass term (scores with a trailing class axis), else 0."""
        return int(self.scores.shape[-1]) if self.scores.ndim > self.weights.ndim else 0

    def for_class(self, j: int) -> EBMTerm:
        """The term's scores (and std) of class index ``j`` of a multiclass model."""
        k = self.n_classes
        if not k:
            return self
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or not -k <= j < k:
            raise InvalidParameterError(
                f"class_index must be an integer between 0 and {k - 1} for this multiclass "
                f"term, got {j!r}."
            )
        return replace(self, scores=self.scores[..., j], std=self.std[..., j])

    def to_frame(self) -> pd.DataFrame:
        """Scores, std and weights per bin (main terms) or per cell (pairs) as a long table;
        a multiclass term has one block per class, told apart by a ``class_index`` column."""
        if self.n_classes:
            frames = [
                self.for_class(j).to_frame().assign(class_index=j) for j in range(self.n_classes)
            ]
            return pd.concat(frames, ignore_index=True)
        if not self.is_pair:
            return pd.DataFrame(
                {
                    "bin": self.bin_labels[0],
                    "score": self.scores,
                    "std": self.std,
                    "weight": self.weights,
                }
            )
        la, lb = self.bin_labels
        ia, ib = np.meshgrid(np.arange(len(la)), np.arange(len(lb)), indexing="ij")
        return pd.DataFrame(
            {
                self.features[0]: np.asarray(la, dtype=object)[ia.ravel()],
                self.features[1]: np.asarray(lb, dtype=object)[ib.ravel()],
                "score": self.scores.ravel(),
                "std": self.std.ravel(),
                "weight": self.weights.ravel(),
            }
        )


class EBMGlobal:
    """The global explanation of a fitted EBM: intercept, terms, importances, plots.

    Parameters
    ----------
    intercept : float, or ndarray of shape (k,) for a multiclass model
    terms : list of EBMTerm
    output : str
        What the scores are on (``"log-odds of class 1"``, ``"prediction"``).
    """

    def __init__(self, intercept: float, terms: list[EBMTerm], output: str) -> None:
        self.intercept = float(intercept) if np.ndim(intercept) == 0 else np.asarray(intercept, dtype=float)  # fmt: skip
        self.terms = list(terms)
        self.output = output

    @property
    def term_names(self) -> list[str]:
        return [t.name for t in self.terms]

    def __len__(self) -> int:
        return len(self.terms)

    def __repr__(self) -> str:
        pairs = sum(t.is_pair for t in self.terms)
        icpt = np.array2string(np.asarray(self.intercept), precision=4)
        return (
            f"<EBMGlobal {len(self.terms) - pairs} main terms, {pairs} pairs, "
            f"intercept={icpt}, output={self.output!r}>"
        )

    def __getitem__(self, key: str | int) -> EBMTerm:
        return self.terms[self._index(key)]

    def _index(self, key: str | int) -> int:
        names = self.term_names
        if isinstance(key, str):
            if key not in names:
                raise InvalidParameterError(f"unknown term {key!r}. Known terms: {names}.")
            return names.index(key)
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            if not -len(names) <= key < len(names):
                raise InvalidParameterError(
                    f"term index {key} is out of range for {len(names)} terms."
                )
            return int(key) % len(names)
        raise InvalidParameterError(f"terms are selected by name or index, got {key!r}.")

    def importance(self) -> pd.Series:
        """Mean absolute contribution of each term over the training rows, in term order."""
        return pd.Series(
            [t.importance for t in self.terms], index=self.term_names, name="importance"
        )

    def to_explanation(self) -> Explanation:
        """A one-row Explanation whose values are the term importances."""
        imp = self.importance().to_numpy()
        # a multiclass model has one intercept per class: the base value is their mean
        return Explanation(
            imp[None, :],
            np.array([float(np.mean(self.intercept))]),
            feature_names=self.term_names,
            method="ebm_global",
            params={"output": f"mean |contribution| to the {self.output}"},
        )

    def plot(self, term: str | int, ax: Any = None, class_index: int | None = None) -> Any:
        """Plot one term's shape function with its bagging error bars; returns the Axes.

        Numeric main terms are step functions over their bins with a band of +-1 std,
        nominal terms bars with error bars, pairs a heat map of the cell scores. A multiclass
        model's term is plotted for one class: ``class_index`` (index into ``classes_``).
        """
        import matplotlib.pyplot as plt

        t = self[term]
        if t.n_classes:
            if class_index is None:
                raise InvalidParameterError(
                    f"term {t.name!r} has a score per class ({t.n_classes} classes); pass "
                    "class_index= (an index into the model's classes_) to plot one of them."
                )
            t = t.for_class(class_index)
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.0))
        if t.is_pair:
            keep_a = t.weights.sum(axis=1) > 0
            keep_b = t.weights.sum(axis=0) > 0
            img = ax.imshow(t.scores[np.ix_(keep_a, keep_b)].T, origin="lower", aspect="auto")
            ax.figure.colorbar(img, ax=ax, label=f"score ({self.output})")
            # the cells are bins: label the axes with the bins' value ranges, not their indices
            for labels, keep, set_ticks, set_labels in (
                (t.bin_labels[0], keep_a, ax.set_xticks, ax.set_xticklabels),
                (t.bin_labels[1], keep_b, ax.set_yticks, ax.set_yticklabels),
            ):
                kept = [lab for lab, k in zip(labels, keep, strict=True) if k]
                step = max(1, int(np.ceil(len(kept) / 12)))
                ticks = np.arange(0, len(kept), step)
                set_ticks(ticks)
                set_labels([kept[i] for i in ticks], fontsize=7, **_TEXT)
            ax.tick_params(axis="x", labelrotation=45)
            ax.set_xlabel(t.features[0], **_TEXT)
            ax.set_ylabel(t.features[1], **_TEXT)
        elif t.kinds[0] == "nominal":
            keep = t.weights > 0
            labels = [lab for lab, k in zip(t.bin_labels[0], keep, strict=True) if k]
            x = np.arange(len(labels))
            ax.bar(x, t.scores[keep], yerr=t.std[keep], color="#008bfb", capsize=3)
            ax.set_xticks(x)
            ax.set_xticklabels(labels, rotation=45, ha="right", **_TEXT)
            ax.set_xlabel(t.features[0], **_TEXT)
        else:
            cuts = t.cuts[0]
            s = t.scores[1 : len(cuts) + 2]
            d = t.std[1 : len(cuts) + 2]
            if cuts.size:
                span = cuts[-1] - cuts[0] if cuts.size > 1 else 1.0
                edges = np.concatenate([[cuts[0] - 0.05 * span], cuts, [cuts[-1] + 0.05 * span]])
            else:
                edges = np.array([0.0, 1.0])
            ax.stairs(s, edges, color="#ff0051", baseline=None)
            ax.stairs(s + d, edges, baseline=s - d, fill=True, alpha=0.25, color="#ff0051")
            if t.weights[0] > 0:
                ax.errorbar([edges[0]], [t.scores[0]], yerr=[t.std[0]], fmt="o", color="#777777")
            ax.set_xlabel(t.features[0], **_TEXT)
        if not t.is_pair:  # a pair's y axis is its second feature; the colour bar its score
            ax.set_ylabel(f"score ({self.output})", **_TEXT)
        ax.set_title(t.name, **_TEXT)
        return ax
