"""Class activation maps: Grad-CAM, Grad-CAM++, guided backpropagation, Guided Grad-CAM.

* :class:`GradCam`: ``relu(sum_c w_c A_c)`` with ``w_c`` the spatial mean of the gradient
  of the explained output w.r.t. channel ``c`` of the layer's output ``A`` (Selvaraju et
  al., 2017).
* :class:`GradCamPlusPlus`: the weights ``w_c = sum_ij a_ij relu(g_ij)`` with
  ``a_ij = g_ij^2 / (2 g_ij^2 + sum_ab A_ab g_ij^3)`` (Chattopadhyay et al., 2018, with the
  exponential-output closed form used by their code and by pytorch-grad-cam).
* :class:`GuidedBackprop`: the input gradient where every ``torch.nn.ReLU`` module passes
  back only positive gradients (Springenberg et al., 2015).
* :class:`GuidedGradCam`: guided backpropagation times the Grad-CAM map upsampled to the
  input size.

The layer is a path of ``model.named_modules()`` (``layer="features.3"``); its output must
be one tensor of shape (n, C, *spatial). ``upsample=True`` (default) resizes the map to the
input's spatial size (bilinear for 2-D maps, linear for 1-D); ``upsample=False`` keeps the
layer's resolution. Maps have one channel: values are (n, 1, *spatial).

Guided backpropagation is installed with temporary forward hooks on the model's
``torch.nn.ReLU`` modules, removed on exit. ReLUs applied functionally (``F.relu`` or
``torch.relu`` inside ``forward``) are not modules and cannot be hooked: their gradients
are left unguided, so models that use them are refused unless they also hold ReLU modules.

References
----------
Selvaraju, R. R., Cogswell, M., Das, A., Vedantam, R., Parikh, D., Batra, D. (2017).
Grad-CAM: visual explanations from deep networks via gradient-based localization. ICCV.
Chattopadhyay, A., Sarkar, A., Howlader, P., Balasubramanian, V. N. (2018). Grad-CAM++:
generalized gradient-based visual explanations for deep convolutional networks. WACV.
Springenberg, J. T., Dosovitskiy, A., Brox, T., Riedmiller, M. (2015). Striving for
simplicity: the all convolutional net. ICLR workshop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from whybox._validation import check_in
from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.explanation import Explanation
from whybox.internals import hooks

from ._base import (
    GradientExplainer,
    batched,
    check_batch_size,
    default_batch_rows,
    eval_semantics,
    gradients,
    layer_gradients,
    torch_module,
)

__all__ = ["GradCam", "GradCamPlusPlus", "GuidedBackprop", "GuidedGradCam"]

_MODES = ("bilinear", "nearest")


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def _upsample(cam: Any, size: tuple[int, ...], mode: str) -> Any:
    """Resize maps (m, 1, *spatial, T) to ``size``."""
    torch = torch_module()
    T = cam.shape[-1]
    moved = torch.movedim(cam, -1, 1).reshape(cam.shape[0] * T, 1, *cam.shape[2:-1])
    if mode == "bilinear":
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
        out = torch.nn.functional.interpolate(moved, size=size, mode=mode, align_corners=False)
    else:
        out = torch.nn.functional.interpolate(moved, size=size, mode="nearest")
    out = out.reshape(cam.shape[0], T, 1, *size)
    return torch.movedim(out, 1, -1)


def _cam_weights(A: Any, g: Any, plus_plus: bool) -> Any:
    """Channel weights (m, C, T) from activations (m, C, *sp) and gradients (m, C, *sp, T)."""
    sp = tuple(range(2, A.ndim))
    if not plus_plus:
        return g.mean(dim=sp)
    g2, g3 = g * g, g * g * g
    sum_a = A.sum(dim=sp).reshape(*A.shape[:2], *([1] * (A.ndim - 2)), 1)
    denom = 2.0 * g2 + sum_a * g3
    aij = g2 / (denom + 1e-7 * (denom == 0))
    aij = aij * (g != 0)
    return (aij * g.clamp_min(0)).sum(dim=sp)


class GradCam(GradientExplainer):
    """Grad-CAM of the layer at ``layer`` (Selvaraju et al., 2017).

    Parameters
    ----------
    model : torch.nn.Module
        The network, explained in eval mode on its own device and dtype.
    layer : str
        Path of the module in ``model.named_modules()``, typically the last convolution.
    relu : bool, default True
        Apply the ReLU of the paper to the map (Captum's ``relu_attributions``).
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs (e.g. class names), usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``, or a ``layer`` that is not a path of
        ``model.named_modules()``.

    Notes
    -----
    ``.explain(x, target=None)`` takes images ``(n, c, h, w)`` and returns the map
    upsampled to the input's spatial size, shape (n, 1, h, w).

    Any module that runs once per forward pass can be the layer, also one whose output the
    model then changes in place (the last batch norm of a ResNet block before
    ``out += identity``, a convolution before ``ReLU(inplace=True)``): its output is recorded
    as it leaves the module and the rest of the forward pass runs on a copy.

    References
    ----------
    Selvaraju et al. (2017), Grad-CAM: visual explanations from deep networks via
    gradient-based localization. ICCV.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> x, y = data.X_test[:2], data.y_test[:2]
    >>> exp = wb.GradCam(model, "features.3").explain(x, target=y)
    >>> exp.values.shape, bool((exp.values >= 0).all())  # one ReLU'd map per image
    ((2, 1, 8, 8), True)
    """

    method = "grad_cam"
    _plus_plus = False

    def __init__(
        self,
        model: Any,
        layer: str,
        *,
        relu: bool = True,
        output: Any = None,
        output_names: Any = None,
    ) -> None:
        super().__init__(model, output=output, output_names=output_names)
        hooks.get_module(model, layer)
        self.layer = layer
        self.relu = _check_bool("relu", relu)

    def _cam(self, x: Any, index: Any, batch_rows: int, rows: Any = None) -> tuple[Any, Any]:
        """Layer-resolution maps (m, 1, *spatial, T) and model outputs (m, k)."""
        torch = torch_module()
        ids = np.arange(len(x)) if rows is None else np.asarray(rows)
        maps, outs = [], []
        for s, e in batched(len(x), batch_rows):
            A, g, out = layer_gradients(
                self.model, x[s:e], index[s:e], self.layer, output=self.output, rows=ids[s:e]
            )
            if A.ndim < 3:
                raise InvalidParameterError(
                    f"layer {self.layer!r} outputs shape {tuple(A.shape)}; Grad-CAM needs "
                    "channels and spatial axes (n, C, H, W) or (n, C, L). Choose a "
                    "convolutional layer."
                )
            w = _cam_weights(A, g, self._plus_plus)  # (m, C, T)
            w = w.reshape(*w.shape[:2], *([1] * (A.ndim - 2)), w.shape[-1])
            cam = (w * A[..., None]).sum(dim=1, keepdim=True)
            maps.append(cam.clamp_min(0) if self.relu else cam)
            outs.append(out)
        return torch.cat(maps), torch.cat(outs)

    def _params(self) -> dict[str, Any]:
        return {"layer": self.layer, "relu": self.relu}

    _WRAPPED_KEYWORDS = ("upsample", "mode")

    def _prepare_kwargs(self, x: Any, **kwargs: Any) -> dict[str, Any]:
        """Arguments when wrapped by SmoothGrad / VarGrad: ``upsample`` and ``mode``."""
        super()._prepare_kwargs(x, **kwargs)
        upsample = _check_bool("upsample", kwargs.get("upsample", True))
        mode = check_in("mode", kwargs.get("mode", "bilinear"), _MODES)
        return {"upsample": upsample, "mode": mode}

    def _attribute(
        self,
        x: Any,
        index: Any,
        batch_rows: int,
        *,
        rows: Any = None,
        upsample: bool = True,
        mode: str = "bilinear",
    ) -> tuple[Any, dict[str, Any]]:
        cam, _ = self._cam(x, index, batch_rows, rows)
        if upsample:
            cam = self._resize(cam, x, mode)
        return cam, {"n_evals": 1, "params": {**self._params(), "upsample": upsample}}

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        upsample: bool = True,
        mode: str = "bilinear",
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Class activation maps of ``x``.

        Parameters
        ----------
        x : tensor or array of shape (n, C, *spatial)
        target : int, str, list, "all" or tensor of shape (n,)
        upsample : bool, default True
            Resize the maps to the input's spatial size; False keeps the layer resolution.
        mode : {"bilinear", "nearest"}
            Interpolation of the upsampling (bilinear means linear for 1-D maps).
        internal_batch_size : int, optional
            Inputs per forward/backward pass.

        Returns
        -------
        Explanation
            ``values`` (n, 1, *spatial[, k]); base values 0, predictions f(x).
        """
        self._check_keywords(kwargs, ["target", "upsample", "mode", "internal_batch_size"])
        upsample = _check_bool("upsample", upsample)
        check_in("mode", mode, _MODES)
        rows_arg = check_batch_size(internal_batch_size)
        xt = self._inputs(x)
        rows = rows_arg or default_batch_rows(int(np.prod(xt.shape[1:])))
        with eval_semantics(self.model):
            preds = self._outputs(xt, rows)
            targets = self._targets(target, preds.shape[1], xt.shape[0], xt.device)
            cam, _ = self._cam(xt, targets.index, rows)
        if upsample:
            cam = self._resize(cam, xt, mode)
        return self._explanation(
            cam,
            x=xt,
            targets=targets,
            predictions=preds,
            params={**self._params(), "upsample": upsample, "mode": mode if upsample else None},
            n_evals=1,
            value_shape=tuple(cam.shape[1:-1]),
        )

    def _resize(self, cam: Any, x: Any, mode: str) -> Any:
        size = tuple(x.shape[2:])
        if len(size) != cam.ndim - 3:
            raise InvalidParameterError(
                f"cannot upsample a map of shape {tuple(cam.shape[2:-1])} to inputs of shape "
                f"{tuple(x.shape[1:])}: their spatial ranks differ. Pass upsample=False."
            )
        return _upsample(cam, size, mode)


class GradCamPlusPlus(GradCam):
    """Grad-CAM++ (Chattopadhyay et al., 2018): positive-gradient, pixel-weighted channel
    weights.

    Parameters
    ----------
    model : torch.nn.Module
        The network, explained in eval mode on its own device and dtype.
    layer : str
        Path of the module in ``model.named_modules()``, typically the last convolution.
    relu : bool, default True
        Apply the ReLU of the paper to the map (Captum's ``relu_attributions``).
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs (e.g. class names), usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``, or a ``layer`` that is not a path of
        ``model.named_modules()``.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> x, y = data.X_test[:2], data.y_test[:2]
    >>> exp = wb.GradCamPlusPlus(model, "features.3").explain(x, target=y)
    >>> exp.values.shape, bool((exp.values >= 0).all())
    ((2, 1, 8, 8), True)

    References
    ----------
    Chattopadhyay et al. (2018), Grad-CAM++: generalized gradient-based visual
    explanations for deep convolutional networks. WACV.
    """

    method = "grad_cam_plus_plus"
    _plus_plus = True


@contextmanager
def guided_relus(model: Any) -> Iterator[int]:
    """Make every ``torch.nn.ReLU`` module pass back only positive gradients.

    Yields the number of hooked modules. Hooks are removed on exit.
    """
    torch = torch_module()

    class _Guide(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, out: Any) -> Any:
            # a copy, not a view: the model may change the ReLU's output in place next
            return out.clone()

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return grad.clamp_min(0)

    def hook(module: Any, args: Any, output: Any) -> Any:
        return _Guide.apply(output)

    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    if not relus:
        raise UnsupportedModelError(
            f"guided backpropagation hooks torch.nn.ReLU modules, and "
            f"{type(model).__name__} has none (ReLUs applied with F.relu or torch.relu "
            "inside forward cannot be hooked). Use nn.ReLU modules, or another method such "
            "as wb.IntegratedGradients."
        )
    with hooks.registered([]) as handles:
        for m in relus:
            handles.append(m.register_forward_hook(hook))
        yield len(relus)


class GuidedBackprop(GradientExplainer):
    """Guided backpropagation (Springenberg et al., 2015) through ``nn.ReLU`` modules.

    Only ``nn.ReLU`` modules pass back positive gradients alone; functional ReLUs
    (``F.relu`` inside ``forward``) cannot be hooked and stay unguided, so a model with
    functional ReLUs and no ReLU module is refused.

    Parameters
    ----------
    model : torch.nn.Module
        The network, explained in eval mode on its own device and dtype.
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs (e.g. class names), usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``, or has no ``nn.ReLU`` module to guide.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> x, y = data.X_test[:2], data.y_test[:2]
    >>> exp = wb.GuidedBackprop(model).explain(x, target=y)
    >>> exp.values.shape
    (2, 1, 8, 8)

    References
    ----------
    Springenberg et al. (2015), Striving for simplicity: the all convolutional net. ICLR.
    """

    method = "guided_backprop"

    def _attribute(
        self, x: Any, index: Any, batch_rows: int, *, rows: Any = None, **kwargs: Any
    ) -> Any:
        torch = torch_module()
        ids = np.arange(len(x)) if rows is None else np.asarray(rows)
        with guided_relus(self.model) as count:
            parts = [
                gradients(self.model, x[s:e], index[s:e], output=self.output, rows=ids[s:e])[0]
                for s, e in batched(len(x), batch_rows)
            ]
        return torch.cat(parts), {"n_evals": 1, "params": {"guided_relus": count}}

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Guided gradients of ``x``: values (n, *input_shape[, k]), base values 0.

        An unknown keyword raises InvalidParameterError.
        """
        self._check_keywords(kwargs, ["target", "internal_batch_size"])
        return self._explain_plain(x, target, internal_batch_size)


class GuidedGradCam(GradCam):
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map.

    Values have the input's shape.

    Parameters
    ----------
    model : torch.nn.Module
        The network, explained in eval mode on its own device and dtype.
    layer : str
        Path of the module in ``model.named_modules()``, typically the last convolution.
    relu : bool, default True
        Apply the ReLU of the paper to the map (Captum's ``relu_attributions``).
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs (e.g. class names), usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``, or a ``layer`` that is not a path of
        ``model.named_modules()``.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> x, y = data.X_test[:2], data.y_test[:2]
    >>> exp = wb.GuidedGradCam(model, "features.3").explain(x, target=y)
    >>> exp.values.shape  # the input's shape, not the layer's
    (2, 1, 8, 8)

    References
    ----------
    Selvaraju et al. (2017), Grad-CAM. ICCV.
    """

    method = "guided_grad_cam"

    _WRAPPED_KEYWORDS = ("mode",)

    def _prepare_kwargs(self, x: Any, **kwargs: Any) -> dict[str, Any]:
        GradientExplainer._prepare_kwargs(self, x, **kwargs)
        return {"mode": check_in("mode", kwargs.get("mode", "bilinear"), _MODES)}

    def _attribute(
        self,
        x: Any,
        index: Any,
        batch_rows: int,
        *,
        rows: Any = None,
        mode: str = "bilinear",
        **kwargs: Any,
    ) -> tuple[Any, dict[str, Any]]:
        cam, _ = self._cam(x, index, batch_rows, rows)
        guided = GuidedBackprop(self.model, output=self.output)
        gb, _ = guided._attribute(x, index, batch_rows, rows=rows)
        return gb * self._resize(cam, x, mode), {"n_evals": 2, "params": self._params()}

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        mode: str = "bilinear",
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Guided Grad-CAM of ``x``: values (n, *input_shape[, k]), base values 0.

        An unknown keyword raises InvalidParameterError.
        """
        self._check_keywords(kwargs, ["target", "mode", "internal_batch_size"])
        check_in("mode", mode, _MODES)
        rows_arg = check_batch_size(internal_batch_size)
        xt = self._inputs(x)
        rows = rows_arg or default_batch_rows(int(np.prod(xt.shape[1:])))
        with eval_semantics(self.model):
            preds = self._outputs(xt, rows)
            targets = self._targets(target, preds.shape[1], xt.shape[0], xt.device)
            values, _ = self._attribute(xt, targets.index, rows, mode=mode)
        return self._explanation(
            values,
            x=xt,
            targets=targets,
            predictions=preds,
            params={**self._params(), "mode": mode},
            n_evals=2,
        )
