"""Write a whybox SAE as a SAELens folder (``cfg.json`` + ``sae_weights.safetensors``).

Kept apart from :mod:`whybox.sae.io` (which reads folders and builds SAEs, so imports
:mod:`whybox.sae.models`) so that ``SAE.save`` can call :func:`save_sae` without an import
circle. Layout and conventions: see :mod:`whybox.sae.io`.

References
----------
.. [1] Bloom, J., Tigges, C., Duong, A. & Chanin, D. (2024). SAELens (the folder format).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from whybox.errors import InvalidParameterError

__all__ = ["save_sae"]

SAELENS_WEIGHTS = "sae_weights.safetensors"
CFG = "cfg.json"
# the SAELens format version written into metadata (SAELens reads older configs differently)
FORMAT_VERSION = "6.0.0"
# SAEConfig fields whybox stores under metadata["whybox"] to restore its training settings
TRAINING_FIELDS = (
    "l1_coefficient",
    "l0_coefficient",
    "jumprelu_bandwidth",
    "jumprelu_init_threshold",
    "aux_k",
    "aux_coefficient",
    "dead_tokens",
    "normalize_decoder",
    "topk_threshold_lr",
)


def _dtype_name(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def save_sae(sae: Any, folder: str | os.PathLike[str]) -> Path:
    """Write ``sae`` as a SAELens folder: ``cfg.json`` + ``sae_weights.safetensors``.

    Activation-norm scaling is folded into the weights (``W_enc * s``, ``W_dec / s``,
    ``b_dec / s``) and ``normalize_activations`` written as ``"none"``, as SAELens does after
    training; the SAE itself is left unchanged. BatchTopK and Matryoshka SAEs are written as
    JumpReLU SAEs with one threshold on every latent and ``metadata.training_architecture``
    (SAELens' export), from which :func:`load` restores them. Transcoders are written as
    SAELens ``transcoder`` / ``jumprelu_transcoder`` folders; a TopK transcoder is refused,
    since SAELens 6.54 has no TopK transcoder class to load it. Both files are written to
    temporary names first and renamed into place, so a failure leaves an existing folder as
    it was.

    Parameters
    ----------
    sae : SAE
    folder : str or path-like
        Created if missing (its parent must exist).

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    InvalidParameterError
        ``sae`` is not a whybox SAE; ``folder`` is a file or its parent does not exist;
        ``sae`` is a TopK transcoder (SAELens cannot load one: train the transcoder as
        standard, JumpReLU, BatchTopK or Matryoshka instead).
    """
    from safetensors.torch import save as st_save

    from whybox.internals.hooks import require_torch

    torch = require_torch("saving sparse autoencoders")
    if not all(hasattr(sae, name) for name in ("cfg", "W_enc", "W_dec", "b_enc", "b_dec")):
        raise InvalidParameterError(f"save_sae expects a whybox SAE, got {type(sae).__name__}.")
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise InvalidParameterError(
            f"cannot save to {str(root)!r}: it is a file. Choose a folder path."
        )
    if not root.parent.is_dir():
        raise InvalidParameterError(
            f"cannot save to {str(root)!r}: the folder {str(root.parent)!r} does not exist. "
            "Create it first or choose another path."
        )
    cfg = sae.cfg
    if cfg.architecture == "topk" and sae.is_transcoder:
        raise InvalidParameterError(
            "cannot save a TopK transcoder as a SAELens folder: SAELens (6.54) has no TopK "
            "transcoder; its transcoders are 'transcoder' (ReLU), 'jumprelu_transcoder' and "
            "the skip variants, so SAELens could not load what would be written. Transcoders "
            "with architecture='standard', 'jumprelu', 'batchtopk' or 'matryoshka' save (the "
            "last two as SAELens JumpReLU transcoders that encode as they do at inference), "
            "and so do TopK SAEs; train one of those, or keep this transcoder's tensors "
            "yourself (sae.state_dict())."
        )
    with torch.no_grad():
        w_enc = sae.W_enc.detach().cpu().clone()
        w_dec = sae.W_dec.detach().cpu().clone()
        b_enc = sae.b_enc.detach().cpu().clone()
        b_dec = sae.b_dec.detach().cpu().clone()
        s = sae.scaling_factor
        if s is not None:  # encode(x * s) == encode over the folded weights (thresholds unchanged)
            w_enc, w_dec, b_dec = w_enc * s, w_dec / s, b_dec / s
        tensors = {"W_enc": w_enc, "W_dec": w_dec, "b_enc": b_enc, "b_dec": b_dec}
        arch = cfg.architecture
        if arch in ("jumprelu", "batchtopk", "matryoshka"):
            tensors["threshold"] = sae.threshold.detach().cpu().to(w_enc.dtype).contiguous()
    tensors = {name: t.contiguous() for name, t in tensors.items()}

    transcoder = sae.is_transcoder
    meta: dict[str, Any] = {
        key: value
        for key, value in (cfg.metadata or {}).items()
        if key not in ("format", "source_architecture", "training_architecture")
        and not key.startswith("training_architecture")
    }
    meta.update(
        sae_lens_version=FORMAT_VERSION,
        sae_lens_training_version=FORMAT_VERSION,
        hook_name=cfg.hook_name,
        model_name=cfg.model_name,
        whybox={key: getattr(cfg, key) for key in TRAINING_FIELDS},
    )
    if transcoder:
        meta["hook_name_out"] = cfg.hook_name_out
    out: dict[str, Any] = {
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": _dtype_name(w_enc),
        "device": "cpu",
        "apply_b_dec_to_input": bool(cfg.apply_b_dec_to_input) and not transcoder,
        "normalize_activations": "none",
        "reshape_activations": "none",
    }
    if arch == "standard":
        out["architecture"] = "transcoder" if transcoder else "standard"
    elif arch == "topk":  # never a transcoder here (refused above)
        out.update(architecture="topk", k=int(cfg.k), rescale_acts_by_decoder_norm=False)
    else:
        out["architecture"] = "jumprelu_transcoder" if transcoder else "jumprelu"
        if arch in ("batchtopk", "matryoshka"):
            meta["training_architecture"] = (
                "batchtopk" if arch == "batchtopk" else "matryoshka_batchtopk"
            )
            details: dict[str, Any] = {"k": int(cfg.k), "topk_threshold_lr": cfg.topk_threshold_lr}
            if arch == "matryoshka":
                details["matryoshka_widths"] = list(cfg.matryoshka_widths or (cfg.d_sae,))
            meta["training_architecture_details"] = details
    if transcoder:
        out["d_out"] = sae.d_out
    out["metadata"] = meta
    from whybox._persist import _jsonable

    payload_cfg = json.dumps(_jsonable(out), indent=2).encode("utf-8")
    payload_weights = st_save(tensors, metadata={"format": "pt"})
    _write_pair(root, {SAELENS_WEIGHTS: payload_weights, CFG: payload_cfg})
    return root


def _write_pair(root: Path, files: dict[str, bytes]) -> None:
    """Write the files under temporary names in ``root``, then rename them into place.

    The files it replaces are kept (hard links, else copies) until every rename has
    succeeded; on any error they are put back, so the folder is left as it was.
    """
    import shutil

    created = not root.exists()
    root.mkdir(exist_ok=True)
    token = secrets.token_hex(8)
    temps: list[tuple[Path, Path]] = []
    backups: list[tuple[Path, Path]] = []
    done: list[Path] = []
    try:
        for name, payload in files.items():
            tmp = root / f".{name}.{token}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            temps.append((tmp, root / name))
        for _, final in temps:
            if final.exists():
                backup = root / f".{final.name}.{token}.bak"
                try:
                    os.link(final, backup)
                except OSError:
                    shutil.copy2(final, backup)
                backups.append((backup, final))
        for tmp, final in temps:
            os.replace(tmp, final)
            done.append(final)
    except BaseException:
        for backup, final in backups:
            if final in done:
                os.replace(backup, final)
        for final in done:
            if all(final != f for _, f in backups) and final.exists():
                final.unlink()
        for path in [t for t, _ in temps] + [b for b, _ in backups]:
            if path.exists():
                path.unlink()
        if created and not any(root.iterdir()):
            root.rmdir()
        raise
    for backup, _ in backups:
        if backup.exists():
            backup.unlink()
