"""The vision report: several attribution methods on the same images, side by side, scored.

:func:`vision_report` explains a few images of a torch image classifier with Integrated
Gradients, SmoothGrad, Grad-CAM and image KernelSHAP, draws them side by side
(:func:`whybox.viz.images.compare`) and scores each with the same faithfulness test: the
deletion and insertion curves (:func:`whybox.metrics.deletion_curve`,
:func:`~whybox.metrics.insertion_curve`) of one pixel game per image, an
:class:`~whybox.games.image.ImageGame` whose players are single pixels and whose removal is
the same for every method. Pixels are ranked by each method's channel-summed heatmap, most
positive first. Integrated Gradients also reports its completeness gap.

``whybox quickstart --vision`` runs it on :func:`whybox.zoo.digits_cnn`.

References
----------
Sundararajan, M., Taly, A. and Yan, Q. (2017). Axiomatic attribution for deep networks. ICML.

Smilkov, D., Thorat, N., Kim, B., Viegas, F. and Wattenberg, M. (2017). SmoothGrad: removing
noise by adding noise. arXiv:1706.03825.

Selvaraju, R. R. et al. (2017). Grad-CAM: visual explanations from deep networks via
gradient-based localization. ICCV.

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.

Petsiuk, V., Das, A. and Saenko, K. (2018). RISE: randomized input sampling for explanation of
black-box models. BMVC. (Deletion and insertion.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_in, check_int
from ..errors import InvalidParameterError
from ..explanation import Explanation
from ._page import Report, figure_data_uri, figures_section
from .quality import quality_section
from .sections import one_output_per_row, summary_section

__all__ = ["VISION_METHODS", "explanation_report", "vision_report"]

#: method key -> column title
VISION_METHODS = {
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "grad_cam": "Grad-CAM",
    "kernel_shap": "image KernelSHAP",
}


def _last_conv(model: Any) -> str:
    name = None
    for path, module in model.named_modules():
        if type(module).__name__.startswith("Conv") and path:
            name = path
    if name is None:
        raise InvalidParameterError(
            "Grad-CAM needs a convolutional layer, and the model has no Conv module; pass "
            "layer='<path in model.named_modules()>' or leave 'grad_cam' out of methods."
        )
    return name


def _kernel_shap(
    model: Any,
    x: Any,
    targets: np.ndarray,
    *,
    segments: str,
    n_segments: int,
    fill: str,
    budget: int,
    random_state: int,
) -> Explanation:
    """Image KernelSHAP of each image for its own target, stacked into one Explanation."""
    from ..agnostic.kernel import KernelShap
    from ..games.image import ImageMasker

    explainer = KernelShap(
        model,
        ImageMasker(segments, n_segments=n_segments, fill=fill),
        random_state=random_state,
    )
    rows = [
        explainer.explain(x[i : i + 1], target=int(t), budget=budget) for i, t in enumerate(targets)
    ]
    first = rows[0]
    return Explanation(
        np.concatenate([r.values for r in rows]),
        np.concatenate([r.base_values for r in rows]),
        data=np.concatenate([r.data for r in rows]),
        std=np.concatenate([r.std for r in rows]),
        predictions=np.concatenate([r.predictions for r in rows]),
        method=first.method,
        params={**first.params, "target": [int(t) for t in targets]},
        n_evals=max(int(r.n_evals or 0) for r in rows),
        random_state=random_state,
        meta={
            "segments": np.concatenate([r.meta["segments"] for r in rows]),
            "segment_values": [r.meta["segment_values"][0] for r in rows],
        },
    )


def _heat(exp: Explanation, i: int) -> np.ndarray:
    from ..viz.images import heatmap_of

    return heatmap_of(exp, i)


def vision_report(
    model: Any,
    images: Any,
    targets: Sequence[int] | np.ndarray | None = None,
    *,
    methods: Sequence[str] = tuple(VISION_METHODS),
    layer: str | None = None,
    class_names: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    ig_steps: int = 64,
    smoothgrad_samples: int = 32,
    segments: str = "grid",
    n_segments: int = 16,
    fill: str = "baseline",
    budget: int = 512,
    random_state: int = 0,
    title: str = "whybox vision report: which pixels drove the prediction?",
    subtitle: str | None = None,
) -> Report:
    """Compare attribution methods on a few images of a torch image classifier.

    Parameters
    ----------
    model : torch.nn.Module
        An image classifier taking (n, c, h, w) float tensors, in eval mode.
    images : torch.Tensor or array of shape (n, c, h, w)
        The images to explain (a handful: each gets a figure).
    targets : sequence of int, optional
        The class explained for each image; default the model's predicted class.
    methods : sequence of str
        Keys of :data:`VISION_METHODS`.
    layer : str, optional
        Grad-CAM's layer (default: the last convolution of ``model.named_modules()``).
    class_names : sequence of str, optional
        Names of the classes, for captions.
    labels : sequence of int, optional
        True classes, shown in the captions.
    ig_steps : int
        Gauss-Legendre steps of Integrated Gradients (baseline: black image).
    smoothgrad_samples : int
        Noisy samples of SmoothGrad (over signed gradients, noise 15 % of each image's range).
    segments, n_segments, fill
        The image KernelSHAP masker (:class:`~whybox.games.image.ImageMasker`); ``fill`` is
        also what the faithfulness curves put in place of removed pixels.
    budget : int
        Coalitions per image for KernelSHAP.
    random_state : int
        Seed of SmoothGrad's noise and KernelSHAP's sampling.

    Returns
    -------
    Report
        A ``figures`` section with one side-by-side figure per image, a table of each
        method's mean deletion AUC (lower is better), insertion AUC (higher is better) and
        completeness gap, and a section with the mean curves and per-image scores.
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed with the extra
        from ..errors import MissingDependencyError

        raise MissingDependencyError("torch", "torch", "the vision report") from exc
    from .. import gradients as gr
    from ..games.image import ImageGame, ImageMasker, as_image_batch
    from ..metrics import deletion_curve, insertion_curve
    from ..viz.images import compare

    for m in methods:
        check_in("method", m, list(VISION_METHODS))
    if not methods:
        raise InvalidParameterError(f"methods is empty; pick some of {list(VISION_METHODS)}.")
    check_int("ig_steps", ig_steps, minimum=1)
    check_int("smoothgrad_samples", smoothgrad_samples, minimum=1)
    arr, _ = as_image_batch(images, "first")
    n = arr.shape[0]
    param = next(model.parameters())
    x = torch.as_tensor(arr, dtype=param.dtype, device=param.device)
    with torch.no_grad():
        logits = model(x).detach().to("cpu", torch.float64).numpy()
    if targets is None:
        t = logits.argmax(axis=1)
    else:
        t = np.asarray(targets)
        if t.shape != (n,) or t.dtype.kind not in "iu":
            raise InvalidParameterError(
                f"targets must give one class index per image, shape ({n},); got {t.shape}."
            )
        if t.min() < 0 or t.max() >= logits.shape[1]:
            raise InvalidParameterError(
                f"targets must be class indices between 0 and {logits.shape[1] - 1}."
            )
    t = t.astype(np.int64)
    t_tensor = torch.as_tensor(t)
    names = [str(c) for c in class_names] if class_names is not None else None

    exps: dict[str, Explanation] = {}
    seconds: dict[str, float] = {}
    for m in methods:
        start = time.perf_counter()
        if m == "integrated_gradients":
            e = gr.IntegratedGradients(model).explain(x, t_tensor, baseline=0, steps=ig_steps)
        elif m == "smoothgrad":
            e = gr.SmoothGrad(
                gr.Saliency(model, absolute=False),
                n_samples=smoothgrad_samples,
                random_state=random_state,
            ).explain(x, t_tensor)
        elif m == "grad_cam":
            e = gr.GradCam(model, layer or _last_conv(model)).explain(x, t_tensor)
        else:
            e = _kernel_shap(
                model,
                x,
                t,
                segments=segments,
                n_segments=n_segments,
                fill=fill,
                budget=budget,
                random_state=random_state,
            )
        seconds[m] = time.perf_counter() - start
        exps[m] = e

    # the same removal for every method: one pixel game per image
    h, w = arr.shape[2], arr.shape[3]
    pixel_masker = ImageMasker(segments=np.arange(h * w).reshape(h, w), fill=fill)
    games = [ImageGame(model, arr[i], pixel_masker, target=int(t[i])) for i in range(n)]
    scores: dict[str, dict[str, np.ndarray]] = {}
    curves: dict[str, tuple[Any, Any]] = {}
    for m, e in exps.items():
        orders = np.stack([np.argsort(-_heat(e, i).ravel(), kind="stable") for i in range(n)])
        dele = deletion_curve(games, orders)
        ins = insertion_curve(games, orders)
        curves[m] = (dele, ins)
        scores[m] = {"deletion": dele.normalized_auc, "insertion": ins.normalized_auc}

    gaps: dict[str, np.ndarray | None] = {}
    for m, e in exps.items():
        if m in ("integrated_gradients", "kernel_shap") and e.predictions is not None:
            span = np.abs(np.asarray(e.predictions) - np.asarray(e.base_values))
            gaps[m] = np.abs(e.completeness_gap()) / np.maximum(span, 1e-12)
        else:
            gaps[m] = None

    def label(c: int) -> str:
        return names[c] if names is not None and 0 <= c < len(names) else str(c)

    cols = {m: VISION_METHODS[m] for m in methods}
    figures = []
    for i in range(n):
        fig = compare({cols[m]: exps[m] for m in methods}, i, outline=False)
        caption = f"image {i}: explained class {label(int(t[i]))}"
        if labels is not None:
            caption += f", true class {label(int(labels[i]))}"
        caption += " · deletion / insertion AUC: " + "; ".join(
            f"{cols[m]} {scores[m]['deletion'][i]:.3f} / {scores[m]['insertion'][i]:.3f}"
            for m in methods
        )
        figures.append({"src": figure_data_uri(fig), "caption": caption})

    def fmt_gap(m: str) -> str:
        g = gaps[m]
        return "—" if g is None else f"{float(np.max(g)):.2e}"

    table = {
        "columns": [
            "method",
            "deletion AUC (lower is better)",
            "insertion AUC (higher is better)",
            "largest relative completeness gap",
            "seconds",
        ],
        "rows": [
            [
                cols[m],
                f"{float(np.nanmean(scores[m]['deletion'])):.3f}",
                f"{float(np.nanmean(scores[m]['insertion'])):.3f}",
                fmt_gap(m),
                f"{seconds[m]:.2f}",
            ]
            for m in methods
        ],
    }
    removal = "black (0)" if fill == "baseline" else {"blur": "blurred", "mean": "unchanged"}[fill]
    rep = Report(
        title=title,
        subtitle=subtitle
        or (
            f"{type(model).__name__} on {n} image(s) of {arr.shape[1]}x{h}x{w}; each method "
            "explains the logit of the explained class."
        ),
    )
    rep.add(
        figures_section(
            "Methods side by side",
            figures,
            text=(
                "Red pixels raise the explained logit, blue ones lower it (Grad-CAM is "
                "non-negative); each panel is scaled to its own largest value. Faithfulness: "
                f"pixels are removed ({removal}) or inserted most-important-first and the "
                "logit followed; the area under the normalised curve is averaged over images. "
                "The completeness gap |prediction - base - sum of values| / |prediction - base| "
                f"is reported for the methods that promise completeness (IG with {ig_steps} "
                f"Gauss-Legendre steps, KernelSHAP with {budget} coalitions over "
                f"{n_segments} {segments} segments)."
            ),
            table=table,
            id="methods",
        )
    )
    rep.add(_curves_section(curves, cols, scores, methods, n))
    return rep


def _curves_section(
    curves: dict[str, tuple[Any, Any]],
    cols: dict[str, str],
    scores: dict[str, dict[str, np.ndarray]],
    methods: Sequence[str],
    n: int,
) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for k, kind in enumerate(("deletion", "insertion")):
        ax = axes[k]
        for m in methods:
            c = curves[m][k]
            vals = c.normalized_values
            mean = np.nanmean(vals, axis=0) if np.isfinite(vals).any() else vals.mean(axis=0)
            ax.plot(c.fractions, mean, lw=2, label=f"{cols[m]} ({np.nanmean(scores[m][kind]):.3f})")
        verb = "removed" if kind == "deletion" else "inserted"
        ax.set_xlabel(f"fraction of pixels {verb}, most important first")
        ax.set_ylabel("normalised logit")
        ax.set_title(f"{kind} (AUC)")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    rows = [
        [f"image {i}"]
        + [f"{scores[m]['deletion'][i]:.3f} / {scores[m]['insertion'][i]:.3f}" for m in methods]
        for i in range(n)
    ]
    return figures_section(
        "Deletion and insertion curves",
        [{"src": figure_data_uri(fig), "caption": "mean normalised curves over the images"}],
        text=(
            "The logit, rescaled per image so that the full image is 1 and the fully removed "
            "image 0, as pixels are removed (left) or inserted (right) in each method's order."
        ),
        table={"columns": ["image"] + [f"{cols[m]} (del / ins)" for m in methods], "rows": rows},
        id="curves",
    )


def _target_indices(exp: Explanation, n: int) -> np.ndarray | None:
    """The class index explained in each image, or None where it cannot be read."""
    rows = exp.row_targets
    recorded = rows if rows is not None else [exp.params.get("target")] * n
    out = []
    for t in recorded[:n]:
        text = str(t)
        if text.startswith("output "):
            text = text[len("output ") :]
        if not text.lstrip("-").isdigit():
            return None
        out.append(int(text))
    return np.asarray(out, dtype=np.int64)


def explanation_report(
    exp: Explanation,
    *,
    model: Any = None,
    X: Any = None,
    max_images: int = 8,
    compare_methods: Sequence[str] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    random_state: int = 0,
) -> Report:
    """The report of an image Explanation: what ``wb.report(exp)`` builds for images.

    Parameters
    ----------
    exp : Explanation
        Attributions of images (feature shape (c, h, w), (h, w, c) or (h, w)). Several
        outputs are read for each image's predicted class.
    model : optional
        The explained model: with it the explanation's faithfulness over pixels
        (:func:`whybox.evaluate`'s image metrics) and, for a torch CNN, the other methods
        of :func:`vision_report` on the same images and targets, side by side.
    X : optional
        The explained images (default ``exp.data``).
    max_images : int, default 8
        The first images shown (and scored).
    compare_methods : sequence of str, optional
        Keys of :data:`VISION_METHODS` compared with ``model`` (default: all that apply;
        Grad-CAM needs a convolution). ``[]`` for none.

    Returns
    -------
    Report
        A summary, the images with their attribution maps, and with ``model`` the quality
        table and the method comparison.
    """
    from ..models import is_torch_module
    from ..viz.images import image as image_plot

    max_images = check_int("max_images", max_images, minimum=1)
    if exp.multi_output:
        exp = one_output_per_row(exp)
    if X is None:
        X = exp.data
    elif exp.data is None:
        exp = exp._replace(data=X)
    n_show = min(max_images, exp.n_rows)
    shown = exp[:n_show]
    rows = shown.row_targets
    rep = Report(
        title=title or "whybox vision report: which pixels drove the prediction?",
        subtitle=subtitle
        or (
            f"{exp.method} explanation of {exp.params.get('output', 'the model output')} on "
            f"{exp.n_rows} image(s)"
        ),
    )
    rep.add(summary_section(exp, model))
    figures = []
    for i in range(n_show):
        ax = image_plot(shown, i, colorbar=False)
        ax.figure.set_size_inches(3.2, 3.2)
        caption = f"image {i}"
        if rows:
            caption += f": explained output {rows[i]}"
        if shown.predictions is not None:
            caption += f" (output {shown.predictions[i]:.4g})"
        figures.append({"src": figure_data_uri(ax.figure), "caption": caption})
    rep.add(
        figures_section(
            "Attributions",
            figures,
            text=(
                f"Each image with its {exp.method} attribution map: red pixels raise the "
                "explained output, blue ones lower it."
                + (
                    f" The first {n_show} of {exp.n_rows} images are shown."
                    if n_show < exp.n_rows
                    else ""
                )
            ),
            id="attributions",
        )
    )
    if model is not None and X is not None:
        images = X[:n_show]
        q = quality_section(shown, model=model, X=images, max_rows=None, random_state=random_state)
        if q is not None:
            rep.add(q)
        if is_torch_module(model):
            methods = list(VISION_METHODS) if compare_methods is None else list(compare_methods)
            if "grad_cam" in methods:
                try:
                    _last_conv(model)
                except InvalidParameterError:
                    methods.remove("grad_cam")
            if methods:
                other = vision_report(
                    model,
                    images,
                    targets=_target_indices(shown, n_show),
                    methods=methods,
                    random_state=random_state,
                )
                for section in other.sections:
                    section["title"] = f"Other methods: {section['title'].lower()}"
                    section["id"] = f"compare-{section['id']}"
                    rep.add(section)
    return rep
