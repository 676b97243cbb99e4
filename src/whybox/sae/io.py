"""Load and save sparse autoencoders: SAELens folders, Gemma Scope ``params.npz``, sparsify folders.

Everything is read from local paths; nothing is downloaded. :func:`load` recognises the format
from the files it finds:

- **SAELens** (``cfg.json`` + ``sae_weights.safetensors``): tensors ``W_enc`` (d_in, d_sae),
  ``W_dec`` (d_sae, d_out), ``b_enc`` (d_sae), ``b_dec`` (d_out) and, for JumpReLU,
  ``threshold`` (d_sae); ``cfg.json`` has ``architecture``, ``d_in``, ``d_sae``, ``dtype``,
  ``apply_b_dec_to_input``, ``normalize_activations``, ``k`` (topk), ``d_out`` (transcoders)
  and ``metadata`` (``hook_name``, ``hook_name_out``, ``model_name``, ``training_architecture``).
  Inference exports (``standard``, ``topk``, ``jumprelu``, ``transcoder``,
  ``jumprelu_transcoder``; BatchTopK and Matryoshka SAEs are exported as ``jumprelu`` with one
  threshold on every latent and ``metadata.training_architecture``) and training checkpoints
  (``batchtopk`` / ``matryoshka_batchtopk`` with a scalar ``topk_threshold``; ``topk`` with
  ``rescale_acts_by_decoder_norm``, which is folded into the weights here) load; so do the
  pre-6.0 names (``hook_point``, ``activation_fn_str="topk"``).
- **Gemma Scope** (``params.npz``): ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``, ``threshold``
  -> a JumpReLU SAE that does not subtract ``b_dec`` from its input.
- **sparsify** (``cfg.json`` + ``sae.safetensors``): ``encoder.weight`` (d_sae, d_in),
  ``encoder.bias``, ``W_dec`` (d_sae, d_in), ``b_dec``; ``cfg.json`` holds ``k`` and
  ``num_latents`` (or ``expansion_factor``) -> a TopK SAE (``transcode`` -> no ``b_dec``
  subtraction).

:func:`save_sae` (``SAE.save``) writes a SAELens folder that SAELens' own
``SAE.load_from_disk`` reads, with any activation-norm scaling folded into the weights.

References
----------
.. [1] Bloom, J., Tigges, C., Duong, A. & Chanin, D. (2024). SAELens (the folder format).
.. [2] Lieberum, T. et al. (2024). "Gemma Scope: Open Sparse Autoencoders Everywhere All At Once
   on Gemma 2." arXiv:2408.05147.
.. [3] Gao, L. et al. (2024). "Scaling and evaluating sparse autoencoders." arXiv:2406.04093
   (TopK; EleutherAI's sparsify follows it).
.. [4] Rajamanoharan, S. et al. (2024). "Jumping Ahead: Improving Reconstruction Fidelity with
   JumpReLU Sparse Autoencoders." arXiv:2407.14435.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.sae._saelens_write import CFG as _CFG
from whybox.sae._saelens_write import SAELENS_WEIGHTS as _SAELENS_WEIGHTS
from whybox.sae._saelens_write import TRAINING_FIELDS as _TRAINING_FIELDS
from whybox.sae._saelens_write import save_sae

__all__ = ["SAELENS_ARCHITECTURES", "load", "save_sae"]

#: ``cfg.json`` architectures :func:`load` reads (SAELens names and whybox's own).
SAELENS_ARCHITECTURES = (
    "standard",
    "topk",
    "jumprelu",
    "batchtopk",
    "matryoshka_batchtopk",
    "transcoder",
    "jumprelu_transcoder",
)
_ALIASES = {"relu": "standard", "matryoshka": "matryoshka_batchtopk"}
_UNSUPPORTED = {
    "gated": "gated SAEs (a separate gating encoder)",
    "abstopk": "AbsTopK SAEs (top-k by absolute value)",
    "skip_transcoder": "skip transcoders (an extra W_skip term)",
    "jumprelu_skip_transcoder": "skip transcoders (an extra W_skip term)",
    "temporal": "temporal SAEs",
    "matching_pursuit": "matching-pursuit SAEs",
}
_SPARSIFY_WEIGHTS = "sae.safetensors"
_NPZ = "params.npz"
_SCALER = "activation_scaler.json"


# ---------------------------------------------------------------------------- load ----
def load(
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    site: str | None = None,
    device: Any = "cpu",
    dtype: Any = None,
) -> Any:
    """Load a sparse autoencoder from a local SAELens, Gemma Scope or sparsify folder.

    Parameters
    ----------
    path : str or path-like
        A SAELens folder (``cfg.json`` + ``sae_weights.safetensors``), a Gemma Scope
        ``params.npz`` (or its folder), or a sparsify folder (``cfg.json`` +
        ``sae.safetensors``; one hook point's folder).
    model : torch.nn.Module or Anatomy, optional
        The model the SAE will read from: the SAE's ``d_in`` (and a transcoder's ``d_out``) is
        checked against the width of its site on this model.
    site : str, optional
        The site the SAE reads on ``model`` (``"blocks.3.resid_post"``, a TransformerLens name
        such as ``"blocks.3.hook_resid_post"``, or a module path); None: the folder's
        ``hook_name``. Stored as ``sae.cfg.hook_name`` (the folder's own one is kept in
        ``metadata["source_hook_name"]``).
    device : str or torch.device, default "cpu"
        Where the parameters are put.
    dtype : str or torch.dtype, optional
        Parameter dtype; None: the file's.

    Returns
    -------
    SAE
        ``sae.encode(x)`` (..., d_in) -> (..., d_sae) equals the source library's encoding.

    Raises
    ------
    InvalidInputError
        A missing path, missing or corrupt files, tensors whose shapes contradict the config,
        a Gemma Scope file without ``threshold``, or a ``d_in`` that does not fit the site.
    InvalidParameterError
        An architecture whybox does not know (the message lists those it reads), or ``k``
        larger than the width.

    Examples
    --------
    A round trip through a SAELens folder (``SAE.save`` writes one):

    >>> import tempfile, torch
    >>> sae, model, _, _, _ = wb.sae.demo_sae()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = sae.save(folder)                    # cfg.json + sae_weights.safetensors
    ...     loaded = wb.sae.load(folder, model=model)
    >>> x = torch.randn(3, 128)
    >>> loaded.cfg.hook_name, torch.equal(loaded.encode(x), sae.encode(x))
    ('blocks.2.resid_post', True)

    References
    ----------
    Bloom, J., Tigges, C. & Chanin, D. (2024). SAELens (the folder format). Lieberum, T. et al.
    (2024). Gemma Scope: Open Sparse Autoencoders Everywhere All At Once on Gemma 2.
    arXiv:2408.05147.
    """
    from whybox.internals.hooks import require_torch

    torch = require_torch("loading sparse autoencoders")
    root = Path(path)
    if not root.exists():
        raise InvalidInputError(
            f"no SAE at {str(root)!r}: the path does not exist. Pass a local folder with "
            "cfg.json + sae_weights.safetensors (SAELens), a params.npz (Gemma Scope) or "
            "cfg.json + sae.safetensors (sparsify); whybox never downloads SAEs."
        )
    if root.is_file():
        if root.suffix != ".npz":
            raise InvalidInputError(
                f"{str(root)!r} is a file; pass its folder (SAELens and sparsify SAEs are "
                "folders) or a Gemma Scope params.npz."
            )
        spec = _read_gemma_scope(root, torch)
    elif (root / _SAELENS_WEIGHTS).exists():
        spec = _read_saelens(root, torch)
    elif (root / _SPARSIFY_WEIGHTS).exists():
        spec = _read_sparsify(root, torch)
    elif (root / _NPZ).exists():
        spec = _read_gemma_scope(root / _NPZ, torch)
    else:
        inner = sorted(p.name for p in root.iterdir() if (p / _CFG).exists())
        hint = (
            f" It holds SAE folders ({', '.join(inner[:8])}{', ...' if len(inner) > 8 else ''}):"
            " pass one of them."
            if inner
            else ""
        )
        raise InvalidInputError(
            f"{str(root)!r} holds no SAE: expected {_SAELENS_WEIGHTS} + {_CFG} (SAELens), "
            f"{_NPZ} (Gemma Scope) or {_SPARSIFY_WEIGHTS} + {_CFG} (sparsify)." + hint
        )
    sae = _build(spec, dtype, torch)
    if model is not None or site is not None:
        _attach_site(sae, model, site)
    return sae.to(device)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InvalidInputError(
            f"{str(path)!r} is missing: an SAE folder needs its {_CFG} next to the weights."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(
            f"{str(path)!r} is not valid JSON ({exc}); the file is corrupt."
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{str(path)!r} must hold a JSON object, got {type(data).__name__}."
        )
    return data


def _read_safetensors(path: Path, torch: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError
        raise InvalidInputError(
            f"cannot read {str(path)!r} ({type(exc).__name__}: {exc}); the file is corrupt or "
            "not a safetensors file."
        ) from exc


def _int_field(cfg: dict[str, Any], key: str, where: Path) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidInputError(
            f"{str(where)!r}: {key} must be an integer, got {value!r}; the config is corrupt."
        )
    return int(value)


def _architecture_error(name: Any, where: Path) -> InvalidParameterError:
    if name in _UNSUPPORTED:
        return InvalidParameterError(
            f"{str(where)!r}: architecture {name!r} ({_UNSUPPORTED[name]}) is not supported by "
            "whybox. It reads: " + ", ".join(repr(a) for a in SAELENS_ARCHITECTURES) + "."
        )
    return InvalidParameterError(
        f"{str(where)!r}: unknown architecture {name!r} in {_CFG}. Known architectures: "
        + ", ".join(repr(a) for a in SAELENS_ARCHITECTURES)
        + " (and the aliases 'relu', 'matryoshka')."
    )


def _read_saelens(root: Path, torch: Any) -> dict[str, Any]:
    """A SAELens folder as a spec: {config fields, tensors, threshold, topk_threshold}."""
    where = root / _CFG
    raw = _read_json(where)
    if not isinstance(raw.get("metadata") or {}, dict):
        raise InvalidInputError(f"{str(where)!r}: metadata must be a JSON object.")
    meta = dict(raw.get("metadata") or {})
    # SAELens < 6 kept these at the top level under older names
    if "hook_point" in raw and "hook_name" not in raw:
        raw["hook_name"] = raw["hook_point"]
    for key in ("hook_name", "hook_name_out", "model_name"):
        if key not in meta and raw.get(key) is not None:
            meta[key] = raw[key]
    arch = raw.get("architecture", "standard")
    if raw.get("activation_fn_str") == "topk" and "architecture" not in raw:
        arch = "topk"
        raw.setdefault("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
    arch = _ALIASES.get(str(arch), arch)
    if arch not in SAELENS_ARCHITECTURES:
        raise _architecture_error(arch, where)
    d_in, d_sae = _int_field(raw, "d_in", where), _int_field(raw, "d_sae", where)
    d_out = _int_field(raw, "d_out", where) if raw.get("d_out") is not None else None
    tensors = _read_safetensors(root / _SAELENS_WEIGHTS, torch)

    norm = raw.get("normalize_activations", "none")
    if isinstance(norm, bool) or norm is None:  # SAELens < 6 stored a bool
        norm = "expected_average_only_in" if norm else "none"
    scaling = None
    if norm == "expected_average_only_in":
        scaler = root / _SCALER
        if scaler.exists():
            scaling = _read_json(scaler).get("scaling_factor")
        if scaling is None:
            warnings.warn(
                f"{str(where)!r} says normalize_activations='expected_average_only_in' but the "
                f"folder has no {_SCALER} with the scaling factor; reading the weights as they "
                "are (as SAELens' load_from_disk does). If encodings look off by a constant "
                "factor, fold the factor with sae.scaling_factor = s; "
                "sae.fold_activation_norm_scaling_().",
                UserWarning,
                stacklevel=3,
            )
        norm = "none"
    elif norm != "none":
        raise InvalidParameterError(
            f"{str(where)!r}: normalize_activations={norm!r} is applied at run time by SAELens "
            "and is not supported by whybox (it reads 'none' and 'expected_average_only_in')."
        )

    threshold = tensors.pop("threshold", None)
    if "log_threshold" in tensors:  # older SAELens JumpReLU checkpoints
        threshold = tensors.pop("log_threshold").double().exp()
    topk_threshold = tensors.pop("topk_threshold", None)
    finetune = tensors.pop("scaling_factor", None)
    if finetune is not None and not torch.allclose(finetune, torch.ones_like(finetune)):
        if "W_dec" in tensors:  # decode((f * s) @ W_dec) == decode(f @ (s[:, None] W_dec))
            tensors["W_dec"] = tensors["W_dec"] * finetune.to(tensors["W_dec"].dtype)[:, None]

    training = str(meta.get("training_architecture") or "")
    details = meta.get("training_architecture_details") or {}
    k = raw.get("k", details.get("k"))
    widths = raw.get("matryoshka_widths", details.get("matryoshka_widths"))
    transcoder = arch in ("transcoder", "jumprelu_transcoder") or (
        d_out is not None and d_out != d_in
    )
    if arch in ("standard", "transcoder"):
        whybox_arch = "standard"
    elif arch == "topk":
        whybox_arch = "topk"
    elif arch in ("batchtopk", "matryoshka_batchtopk"):
        if topk_threshold is None and threshold is None:
            raise InvalidInputError(
                f"{str(root / _SAELENS_WEIGHTS)!r} has no topk_threshold: a {arch} checkpoint "
                "needs its running threshold to encode."
            )
        whybox_arch = "batchtopk" if arch == "batchtopk" else "matryoshka"
    else:  # jumprelu, jumprelu_transcoder
        whybox_arch = "jumprelu"
        if threshold is None:
            raise InvalidInputError(
                f"{str(root / _SAELENS_WEIGHTS)!r} has no 'threshold': a JumpReLU SAE needs one "
                "threshold per latent."
            )
        # a BatchTopK / Matryoshka export: one threshold on every latent; keep its identity
        one = threshold.numel() > 0 and bool((threshold == threshold.flatten()[0]).all())
        if training in ("batchtopk", "matryoshka_batchtopk") and one and k is not None:
            whybox_arch = "batchtopk" if training == "batchtopk" else "matryoshka"
            topk_threshold, threshold = threshold.flatten()[0], None
    if whybox_arch != "matryoshka":
        widths = None
    if whybox_arch == "jumprelu" or whybox_arch == "standard":
        k = None
    cfg = {
        "d_in": d_in,
        "d_sae": d_sae,
        "architecture": whybox_arch,
        "k": k,
        "d_out": d_out if transcoder else None,
        "hook_name": meta.get("hook_name"),
        "hook_name_out": meta.get("hook_name_out"),
        "apply_b_dec_to_input": bool(raw.get("apply_b_dec_to_input", True)) and not transcoder,
        "normalize_activations": "none",
        "matryoshka_widths": widths,
        "dtype": str(raw.get("dtype", "float32")).replace("torch.", ""),
        "model_name": meta.get("model_name"),
    }
    own = meta.get("whybox") or {}
    cfg.update({key: own[key] for key in _TRAINING_FIELDS if key in own})
    meta_out = {
        key: value
        for key, value in meta.items()
        if key not in ("hook_name", "hook_name_out", "model_name", "whybox")
    }
    meta_out.update(format="saelens", source_architecture=arch)
    if raw.get("reshape_activations", "none") != "none":
        meta_out["reshape_activations"] = raw["reshape_activations"]
    cfg["metadata"] = meta_out
    return {
        "cfg": cfg,
        "tensors": tensors,
        "threshold": threshold,
        "topk_threshold": topk_threshold,
        "rescale": bool(raw.get("rescale_acts_by_decoder_norm", False))
        and whybox_arch in ("topk", "batchtopk", "matryoshka"),
        "scaling_factor": scaling,
        "where": root / _SAELENS_WEIGHTS,
    }


def _read_gemma_scope(path: Path, torch: Any) -> dict[str, Any]:
    """A Gemma Scope params.npz: a JumpReLU SAE without b_dec subtraction."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInputError(
            f"cannot read {str(path)!r} ({type(exc).__name__}: {exc}); the file is corrupt or "
            "not an .npz archive."
        ) from exc
    names = {"w_enc": "W_enc", "w_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec"}
    tensors: dict[str, Any] = {}
    threshold = None
    for key, value in arrays.items():
        low = key.lower()
        if low in names:
            tensors[names[low]] = torch.from_numpy(value)
        elif low == "threshold":
            threshold = torch.from_numpy(value)
    if threshold is None:
        raise InvalidInputError(
            f"{str(path)!r} has no 'threshold' (it holds {', '.join(sorted(arrays)) or 'nothing'})"
            ": a Gemma Scope SAE is a JumpReLU SAE and needs its per-latent thresholds "
            "(W_enc, W_dec, b_enc, b_dec, threshold)."
        )
    w_enc = tensors.get("W_enc")
    if w_enc is None or w_enc.ndim != 2:
        raise InvalidInputError(
            f"{str(path)!r} has no 2-D 'W_enc' (d_in, d_sae); it holds {', '.join(sorted(arrays))}."
        )
    d_in, d_sae = (int(s) for s in w_enc.shape)
    cfg = {
        "d_in": d_in,
        "d_sae": d_sae,
        "architecture": "jumprelu",
        "apply_b_dec_to_input": False,
        "dtype": str(w_enc.dtype).replace("torch.", ""),
        "metadata": {"format": "gemma_scope"},
    }
    return {"cfg": cfg, "tensors": tensors, "threshold": threshold, "where": path}


def _read_sparsify(root: Path, torch: Any) -> dict[str, Any]:
    """An EleutherAI sparsify folder: a TopK SAE (or a transcoder of one module)."""
    where = root / _CFG
    raw = _read_json(where)
    d_in = _int_field(raw, "d_in", where)
    activation = raw.get("activation", "topk")
    if activation != "topk":
        raise InvalidParameterError(
            f"{str(where)!r}: sparsify activation {activation!r} is not supported; whybox reads "
            "sparsify's 'topk' SAEs."
        )
    if raw.get("skip_connection") or raw.get("signed"):
        raise InvalidParameterError(
            f"{str(where)!r}: sparsify SAEs with a skip connection or signed activations are "
            "not supported; whybox reads plain TopK SAEs and transcoders."
        )
    state = _read_safetensors(root / _SPARSIFY_WEIGHTS, torch)
    missing = [n for n in ("encoder.weight", "W_dec") if n not in state]
    if missing:
        raise InvalidInputError(
            f"{str(root / _SPARSIFY_WEIGHTS)!r} lacks {', '.join(missing)} (it holds "
            f"{', '.join(sorted(state))}); a sparsify SAE needs encoder.weight, encoder.bias, "
            "W_dec and b_dec."
        )
    if "W_skip" in state:
        raise InvalidParameterError(
            f"{str(root)!r}: sparsify skip connections (W_skip) are not supported."
        )
    enc = state["encoder.weight"]
    d_sae = int(raw.get("num_latents") or 0) or d_in * _int_field(raw, "expansion_factor", where)
    if tuple(enc.shape) != (d_sae, d_in):
        raise InvalidInputError(
            f"{str(root / _SPARSIFY_WEIGHTS)!r}: encoder.weight has shape {tuple(enc.shape)}, "
            f"but {_CFG} says ({d_sae}, {d_in}) (num_latents, d_in); the files do not match."
        )
    tensors = {
        "W_enc": enc.T.contiguous(),
        "b_enc": state.get("encoder.bias", torch.zeros(d_sae, dtype=enc.dtype)),
        "W_dec": state["W_dec"],
        "b_dec": state.get("b_dec", torch.zeros(d_in, dtype=enc.dtype)),
    }
    transcode = bool(raw.get("transcode", False))
    cfg = {
        "d_in": d_in,
        "d_sae": d_sae,
        "architecture": "topk",
        "k": _int_field(raw, "k", where),
        "hook_name": root.name,
        "apply_b_dec_to_input": not transcode,
        "dtype": str(enc.dtype).replace("torch.", ""),
        "metadata": {"format": "sparsify", "transcode": transcode},
    }
    return {"cfg": cfg, "tensors": tensors, "where": root / _SPARSIFY_WEIGHTS}


def _build(spec: dict[str, Any], dtype: Any, torch: Any) -> Any:
    """An SAE from a spec: config, then the tensors, checked against the config's shapes."""
    from whybox.sae.models import SAE, SAEConfig

    cfg_dict = dict(spec["cfg"])
    if dtype is not None:
        cfg_dict["dtype"] = str(dtype).replace("torch.", "")
    if cfg_dict.get("k") is not None:
        k = cfg_dict["k"]
        if isinstance(k, float) and k.is_integer():
            cfg_dict["k"] = int(k)
        if isinstance(cfg_dict["k"], int) and cfg_dict["k"] > cfg_dict["d_sae"]:
            raise InvalidParameterError(
                f"{str(spec['where'])!r}: k={cfg_dict['k']} is larger than the width "
                f"d_sae={cfg_dict['d_sae']}; the config is inconsistent (at most d_sae latents "
                "can be active)."
            )
    cfg = SAEConfig.from_dict(cfg_dict)
    # build on the meta device (no random initialisation of weights about to be overwritten),
    # then allocate; every parameter and buffer is filled below
    with torch.device("meta"):
        sae = SAE.create(cfg, random_state=0)
    state = {n for n, _ in sae.named_parameters()} | {n for n, _ in sae.named_buffers()}
    if state <= {"W_enc", "W_dec", "b_enc", "b_dec", "log_threshold", "topk_threshold"}:
        sae = sae.to_empty(device="cpu")
    else:  # state this loader does not fill: keep the seeded initial values
        sae = SAE.create(cfg, random_state=0)
    tensors = spec["tensors"]
    d_out = cfg.output_width
    shapes = {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "W_dec": (cfg.d_sae, d_out),
        "b_enc": (cfg.d_sae,),
        "b_dec": (d_out,),
    }
    where = str(spec["where"])
    missing = [name for name in shapes if name not in tensors]
    if missing:
        raise InvalidInputError(
            f"{where!r} lacks {', '.join(missing)} (it holds {', '.join(sorted(tensors))}); an "
            "SAE needs W_enc, W_dec, b_enc and b_dec."
        )
    values = {}
    for name, shape in shapes.items():
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise InvalidInputError(
                f"{where!r}: {name} has shape {tuple(t.shape)}, but the config (d_in={cfg.d_in}, "
                f"d_sae={cfg.d_sae}, d_out={d_out}) needs {shape}; the files do not match."
            )
        values[name] = t
    if spec.get("rescale"):
        # SAELens' rescale_acts_by_decoder_norm: fold ||W_dec_j|| into encoder and decoder
        norms = torch.linalg.vector_norm(values["W_dec"].double(), dim=1).clamp_min(1e-8)
        values["W_enc"] = values["W_enc"].double() * norms
        values["b_enc"] = values["b_enc"].double() * norms
        values["W_dec"] = values["W_dec"].double() / norms[:, None]
    with torch.no_grad():
        for name, value in values.items():
            param = getattr(sae, name)
            param.copy_(value.to(param.dtype))
        threshold = spec.get("threshold")
        if cfg.architecture == "jumprelu":
            if tuple(threshold.shape) not in ((cfg.d_sae,), (), (1,)):
                raise InvalidInputError(
                    f"{where!r}: threshold has shape {tuple(threshold.shape)}, expected "
                    f"({cfg.d_sae},) (one per latent)."
                )
            sae.set_threshold_(threshold.to(torch.float64).reshape(-1).expand(cfg.d_sae))
        elif cfg.architecture in ("batchtopk", "matryoshka"):
            top = spec.get("topk_threshold")
            if top is None:
                top = threshold
            top = torch.as_tensor(top).reshape(-1)
            sae.topk_threshold.copy_(top[0].to(sae.topk_threshold.dtype))
    if spec.get("scaling_factor") is not None:
        sae.scaling_factor = float(spec["scaling_factor"])
        if sae.is_transcoder:  # whybox keeps no run-time scaling on transcoders: fold it now
            sae.fold_activation_norm_scaling_()
        else:
            sae.cfg.normalize_activations = "expected_average_only_in"
    return sae


# ---------------------------------------------------------------------------- sites ----
def _site_width(anatomy: Any, point: Any) -> int:
    """The width of the vector an SAE reads at ``point`` (heads flattened)."""
    name = point.name
    m = re.fullmatch(r"blocks\.\d+\.(.+)", name)
    part = m.group(1) if m else name
    d_model = int(anatomy.d_model)
    if part in ("resid_pre", "resid_mid", "resid_post", "attn.out", "mlp.out", "ln1", "ln2"):
        return d_model
    if part in ("embed", "pos_embed", "ln_final"):
        return d_model
    if part == "mlp.post":
        return int(anatomy.d_mlp)
    if part in ("attn.q", "attn.head_out"):
        return int(anatomy.n_heads) * int(anatomy.d_head)
    if part in ("attn.k", "attn.v"):
        heads = point.groups[0] if point.groups else anatomy.n_kv_heads
        return int(heads) * int(anatomy.d_head)
    if part == "unembed" and anatomy.vocab_size:
        return int(anatomy.vocab_size)
    return _probe_width(anatomy, point)


def _probe_width(anatomy: Any, point: Any) -> int:
    """Run the model once on two tokens and read the width at ``point``."""
    from whybox.internals import hooks

    torch = hooks.require_torch()
    seen: list[tuple[int, ...]] = []

    def record(t: Any) -> None:
        seen.append(tuple(t.shape))

    model = anatomy.model
    ids = torch.zeros((1, 2), dtype=torch.long, device=hooks.model_device(model))
    with hooks.on_points(model, [(point, record)]):
        hooks.forward(model, ids)
    if not seen:
        raise InvalidParameterError(
            f"the site {point.name!r} did not run in a forward pass of the model; name a site "
            "that does (Anatomy.of(model).names() lists the standard ones)."
        )
    shape = seen[0]
    return int(shape[-1]) * (int(shape[-2]) if point.heads or point.groups else 1)


def _resolve(anatomy: Any, name: str, what: str) -> Any:
    """The hook point of ``name``; a path relative to the model's base (sparsify) works too."""
    try:
        return anatomy.point(name)
    except InvalidParameterError as exc:
        from whybox.internals.hooks import module_paths

        tails = [p for p in module_paths(anatomy.model) if p.endswith("." + name)]
        if len(tails) == 1:
            return anatomy.point(tails[0])
        raise InvalidParameterError(
            f"the SAE's {what} {name!r} is not a site of this model ({exc}). Pass site= with "
            "the site it should read here, e.g. site='blocks.3.resid_post'."
        ) from exc


def _attach_site(sae: Any, model: Any, site: str | None) -> None:
    """Check ``d_in`` (and a transcoder's ``d_out``) against the model's site widths."""
    from whybox.internals.anatomy import Anatomy

    if site is not None and not isinstance(site, str):
        raise InvalidParameterError(
            f"site must be a str such as 'blocks.3.resid_post', got {type(site).__name__}."
        )
    if site is not None and site != sae.cfg.hook_name:
        if sae.cfg.hook_name is not None:
            sae.cfg.metadata["source_hook_name"] = sae.cfg.hook_name
        sae.cfg.hook_name = site
    if model is None:
        return
    anatomy = model if isinstance(model, Anatomy) else Anatomy.of(model)
    name = sae.cfg.hook_name
    if name is None:
        raise InvalidParameterError(
            "this SAE does not say which site it reads (no hook_name in its files); pass "
            "site= (e.g. site='blocks.3.resid_post') to check it against the model."
        )
    width = _site_width(anatomy, _resolve(anatomy, name, "site"))
    if width != sae.d_in:
        raise InvalidInputError(
            f"the SAE reads vectors of width d_in={sae.d_in}, but the site {name!r} of this model "
            f"has width {width}. It was trained on another model or site; pass site= with a "
            f"site of width {sae.d_in}, or load the SAE made for this model."
        )
    out = sae.cfg.hook_name_out
    if out is not None and sae.is_transcoder:
        width_out = _site_width(anatomy, _resolve(anatomy, out, "output site"))
        if width_out != sae.d_out:
            raise InvalidInputError(
                f"the transcoder predicts vectors of width d_out={sae.d_out}, but its output "
                f"site {out!r} of this model has width {width_out}."
            )
