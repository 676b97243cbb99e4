"""The configuration of a sparse autoencoder: its shape, architecture and training objective.

:class:`SAEConfig` carries SAELens' field names, so a ``cfg.json`` written by SAELens or by
whybox maps onto it directly (:mod:`whybox.sae.io`); unknown keys are kept in ``metadata``.

References
----------
.. [1] Bloom, J., Tigges, C., Duong, A. & Chanin, D. (2024). SAELens (the field names).
.. [2] Gao, L. et al. (2024). "Scaling and evaluating sparse autoencoders." arXiv:2406.04093.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from whybox._validation import check_in, check_int
from whybox.errors import InvalidInputError, InvalidParameterError

__all__ = ["ARCHITECTURES", "SAEConfig"]

#: The architectures whybox trains, loads and saves (``"relu"`` is accepted for "standard").
ARCHITECTURES = ("standard", "topk", "batchtopk", "jumprelu", "matryoshka")
_ALIASES = {"relu": "standard", "relu_l1": "standard", "matryoshka_batchtopk": "matryoshka"}
_NORMALIZE = ("none", "expected_average_only_in")
_TOPK_FAMILY = ("topk", "batchtopk", "matryoshka")


def _architecture(name: Any) -> str:
    """The canonical architecture name, or an error that lists the known ones."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in ARCHITECTURES:
        raise InvalidParameterError(
            f"architecture={name!r} is not a known sparse autoencoder. Expected one of: "
            + ", ".join(repr(a) for a in ARCHITECTURES)
            + " ('relu' is accepted for 'standard')."
        )
    return key


@dataclass
class SAEConfig:
    """Everything that defines an SAE's shape and training objective (SAELens' names).

    Parameters
    ----------
    d_in, d_sae : int
        Input width and number of latents.
    architecture : str, default "topk"
        One of ``whybox.sae.ARCHITECTURES``: ``"standard"`` (alias ``"relu"``), ``"topk"``,
        ``"batchtopk"``, ``"jumprelu"``, ``"matryoshka"``.
    k : int, optional
        Active latents per token (topk, batchtopk, matryoshka); ``1 <= k <= d_sae``.
    d_out : int, optional
        Output width of a transcoder (None: ``d_in``).
    hook_name, hook_name_out : str, optional
        The site read and, for a transcoder, the site predicted (standard names such as
        ``"blocks.3.resid_post"`` or module paths).
    apply_b_dec_to_input : bool
        Subtract ``b_dec`` from the input before encoding (always False for transcoders).
    normalize_activations : {"none", "expected_average_only_in"}
        The latter scales inputs by ``sqrt(d_in) / mean ||x||`` (estimated when training
        starts), as SAELens does; ``SAE.save`` folds the factor into the weights.
    matryoshka_widths : tuple of int, optional
        Increasing prefix sizes whose last entry is ``d_sae`` (matryoshka only).
    l1_coefficient, l0_coefficient : float
        Sparsity penalty weights (standard, jumprelu).
    jumprelu_bandwidth, jumprelu_init_threshold : float
        The straight-through kernel's width (default 0.05) and the initial threshold (default
        0.01), SAELens 6.54's defaults. Both are in the units of the pre-activations: for
        activations far from norm ``sqrt(d_in)`` (``normalize_activations="none"`` on raw
        activations) scale them with the pre-activations, e.g. the bandwidth to a tenth of a
        typical one, or the thresholds barely move.
    aux_k : int, optional
        Dead latents used by AuxK (None: ``d_in // 2``).
    aux_coefficient : float
        Weight of the AuxK loss (Gao et al.: 1/32).
    dead_tokens : int
        A latent that has not fired in this many training tokens counts as dead.
    normalize_decoder : bool, optional
        Keep decoder rows at unit norm (None: True for the top-k family, whose losses do not
        see decoder norms; False for standard and jumprelu, whose penalties weight by them).
    topk_threshold_lr : float
        Step of the running BatchTopK threshold.
    dtype : str
        Parameter dtype (default "float32").
    model_name : str, optional
        The model the SAE was trained on (kept in ``cfg.json``).
    metadata : dict
        Free-form entries (kept in ``cfg.json``).

    Raises
    ------
    InvalidParameterError
        An unknown architecture; a top-k family architecture without ``k`` or with
        ``k > d_sae``; ``matryoshka_widths`` that do not increase to ``d_sae``; negative
        penalty coefficients, a non-positive ``jumprelu_bandwidth``; activation
        normalisation on a transcoder.

    Examples
    --------
    >>> cfg = wb.sae.SAEConfig(d_in=128, d_sae=1024, k=16, hook_name="blocks.2.resid_post")
    >>> cfg.architecture, cfg.is_transcoder, cfg.output_width
    ('topk', False, 128)
    >>> wb.sae.SAEConfig.from_dict(cfg.to_dict()) == cfg      # JSON round trip
    True

    References
    ----------
    Bloom, J., Tigges, C. & Chanin, D. (2024). SAELens (the field names of ``cfg.json``).
    """

    d_in: int
    d_sae: int
    architecture: str = "topk"
    k: int | None = None
    d_out: int | None = None
    hook_name: str | None = None
    hook_name_out: str | None = None
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    matryoshka_widths: tuple[int, ...] | None = None
    l1_coefficient: float = 5.0
    l0_coefficient: float = 1.0
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.01
    aux_k: int | None = None
    aux_coefficient: float = 1 / 32
    dead_tokens: int = 10_000_000
    normalize_decoder: bool | None = None
    topk_threshold_lr: float = 0.01
    dtype: str = "float32"
    model_name: str | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.architecture = _architecture(self.architecture)
        self.d_in = check_int("d_in", self.d_in, minimum=1)
        self.d_sae = check_int("d_sae", self.d_sae, minimum=1)
        if self.d_out is not None:
            self.d_out = check_int("d_out", self.d_out, minimum=1)
        check_in("normalize_activations", self.normalize_activations, _NORMALIZE)
        if self.architecture in _TOPK_FAMILY:
            if self.k is None:
                raise InvalidParameterError(
                    f"architecture={self.architecture!r} needs k, the number of active latents "
                    f"per token: pass k= (an integer from 1 to d_sae={self.d_sae})."
                )
            self.k = check_int("k", self.k, minimum=1)
            if self.k > self.d_sae:
                raise InvalidParameterError(
                    f"k={self.k} is larger than the width d_sae={self.d_sae}: at most d_sae "
                    "latents can be active. Pass a smaller k or a larger width."
                )
        if self.aux_k is not None:
            self.aux_k = check_int("aux_k", self.aux_k, minimum=1)
        if self.architecture == "matryoshka":
            widths = tuple(int(w) for w in (self.matryoshka_widths or (self.d_sae,)))
            if list(widths) != sorted(set(widths)) or widths[-1] != self.d_sae or widths[0] < 1:
                raise InvalidParameterError(
                    f"matryoshka_widths={self.matryoshka_widths!r} must increase strictly and "
                    f"end at d_sae={self.d_sae}, e.g. ({self.d_sae // 4}, {self.d_sae // 2}, "
                    f"{self.d_sae})."
                )
            self.matryoshka_widths = widths
        elif self.matryoshka_widths is not None:
            self.matryoshka_widths = tuple(int(w) for w in self.matryoshka_widths)
        if self.is_transcoder:
            self.apply_b_dec_to_input = False
            if self.normalize_activations != "none":
                raise InvalidParameterError(
                    "normalize_activations must be 'none' for a transcoder (its input and "
                    "output live in different spaces); pass normalize_activations='none'."
                )
        for name in ("l1_coefficient", "l0_coefficient", "aux_coefficient"):
            if not math.isfinite(float(getattr(self, name))) or getattr(self, name) < 0:
                raise InvalidParameterError(f"{name} must be a finite number >= 0.")
        if not float(self.jumprelu_bandwidth) > 0:
            raise InvalidParameterError("jumprelu_bandwidth must be > 0 (e.g. 0.05).")

    @property
    def is_transcoder(self) -> bool:
        """True when the SAE predicts another site (or another width) than it reads."""
        return (self.hook_name_out is not None and self.hook_name_out != self.hook_name) or (
            self.d_out is not None and self.d_out != self.d_in
        )

    @property
    def output_width(self) -> int:
        """``d_out`` or, for an autoencoder, ``d_in``."""
        return self.d_out if self.d_out is not None else self.d_in

    @property
    def decoder_unit_norm(self) -> bool:
        """Whether training keeps decoder rows at unit norm."""
        if self.normalize_decoder is not None:
            return bool(self.normalize_decoder)
        return self.architecture in _TOPK_FAMILY

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-able values."""
        out = dataclasses.asdict(self)
        if out["matryoshka_widths"] is not None:
            out["matryoshka_widths"] = list(out["matryoshka_widths"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        """Build from :meth:`to_dict`'s output; unknown keys go to ``metadata``."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {key: value for key, value in data.items() if key in names}
        extra = {key: value for key, value in data.items() if key not in names}
        if "d_in" not in known or "d_sae" not in known:
            raise InvalidInputError(
                "an SAE configuration needs d_in and d_sae; got the keys "
                + ", ".join(sorted(data))
                + "."
            )
        if known.get("matryoshka_widths") is not None:
            known["matryoshka_widths"] = tuple(known["matryoshka_widths"])
        cfg = cls(**known)
        cfg.metadata = {**dict(cfg.metadata or {}), **extra}
        return cfg
