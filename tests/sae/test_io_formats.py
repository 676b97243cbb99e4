"""sae.io against hand-written layouts: Gemma Scope params.npz, sparsify folders, SAELens edge
cases (older names, scaler file, log thresholds), site checks on a model, atomic saving, and
every error the issue lists.

Expected encodings are numpy re-implementations of each source's published forward pass:
Gemma Scope's JumpReLU (Lieberum et al. 2024: ``pre = x W_enc + b_enc``, ``f = pre * (pre >
threshold)``, no ``b_dec`` subtraction) and sparsify's TopK (``relu((x - b_dec) W^T + b)``, top k,
decoded as ``sum_j f_j W_dec[j] + b_dec``).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from tests.internals.tiny import D, build  # noqa: E402
from whybox.errors import InvalidInputError, InvalidParameterError, WhyboxError  # noqa: E402
from whybox.sae import io  # noqa: E402
from whybox.sae.models import SAE, SAEConfig  # noqa: E402

TOL = dict(rtol=1e-6, atol=1e-6)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _x(width, seed=1, n=40):
    return _rng(seed).normal(size=(n, width)).astype(np.float32)


# ------------------------------------------------------------------ Gemma Scope ----
def _gemma_params(d_in=8, d_sae=24, seed=0):
    r = _rng(seed)
    return {
        "W_enc": (r.normal(size=(d_in, d_sae)) / np.sqrt(d_in)).astype(np.float32),
        "W_dec": r.normal(size=(d_sae, d_in)).astype(np.float32),
        "b_enc": (0.1 * r.normal(size=d_sae)).astype(np.float32),
        "b_dec": (0.5 * r.normal(size=d_in)).astype(np.float32),
        "threshold": (0.05 + 0.4 * r.random(d_sae)).astype(np.float32),
    }


def _gemma_numpy(p, x):
    pre = x.astype(np.float64) @ p["W_enc"] + p["b_enc"]  # no b_dec subtraction
    f = pre * (pre > p["threshold"])
    return f, f @ p["W_dec"] + p["b_dec"]


@pytest.mark.parametrize("as_folder", [False, True])
def test_gemma_scope_npz_encodes_as_its_jumprelu(tmp_path, as_folder):
    p = _gemma_params()
    np.savez(tmp_path / "params.npz", **p)
    sae = io.load(tmp_path if as_folder else tmp_path / "params.npz")
    assert sae.architecture == "jumprelu" and not sae.cfg.apply_b_dec_to_input
    assert (sae.d_in, sae.d_sae) == (8, 24)
    x = _x(8)
    f_ref, xhat_ref = _gemma_numpy(p, x)
    assert 0.05 < (f_ref != 0).mean() < 0.9
    with torch.no_grad():
        f = sae.encode(torch.from_numpy(x))
        np.testing.assert_allclose(f.numpy(), f_ref, **TOL)
        np.testing.assert_allclose(sae.decode(f).numpy(), xhat_ref, rtol=1e-5, atol=1e-5)


def test_gemma_scope_lowercase_names_and_dtype(tmp_path):
    p = _gemma_params()
    np.savez(tmp_path / "params.npz", **{k.lower(): v for k, v in p.items()})
    sae = io.load(tmp_path / "params.npz", dtype=torch.float64)
    assert sae.W_enc.dtype == torch.float64
    f_ref, _ = _gemma_numpy(p, _x(8))
    with torch.no_grad():
        np.testing.assert_allclose(sae.encode(torch.from_numpy(_x(8))).numpy(), f_ref, **TOL)


def test_gemma_scope_without_threshold_is_refused(tmp_path):
    p = _gemma_params()
    del p["threshold"]
    np.savez(tmp_path / "params.npz", **p)
    with pytest.raises(InvalidInputError, match="threshold"):
        io.load(tmp_path / "params.npz")


def test_corrupt_npz_is_refused(tmp_path):
    (tmp_path / "params.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InvalidInputError, match="corrupt"):
        io.load(tmp_path)


# ------------------------------------------------------------------ sparsify ----
def _sparsify_folder(root, *, d_in=8, n=32, k=3, transcode=False, seed=0, **cfg_extra):
    r = _rng(seed)
    state = {
        "encoder.weight": torch.from_numpy((r.normal(size=(n, d_in)) / np.sqrt(d_in)).astype("f4")),
        "encoder.bias": torch.from_numpy((0.1 * r.normal(size=n)).astype("f4")),
        "W_dec": torch.from_numpy(r.normal(size=(n, d_in)).astype("f4")),
        "b_dec": torch.from_numpy((0.5 * r.normal(size=d_in)).astype("f4")),
    }
    root.mkdir(parents=True, exist_ok=True)
    safetensors_torch.save_file(state, str(root / "sae.safetensors"))
    cfg = {
        "activation": "topk",
        "expansion_factor": n // d_in,
        "normalize_decoder": True,
        "num_latents": 0,
        "k": k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": transcode,
        "d_in": d_in,
        **cfg_extra,
    }
    (root / "cfg.json").write_text(json.dumps(cfg))
    return {name: t.numpy().astype(np.float64) for name, t in state.items()}


def _sparsify_numpy(s, x, k, transcode=False):
    xin = x.astype(np.float64) if transcode else x - s["b_dec"]
    pre = np.maximum(xin @ s["encoder.weight"].T + s["encoder.bias"], 0)
    idx = np.argsort(-pre, axis=1)[:, :k]
    f = np.zeros_like(pre)
    np.put_along_axis(f, idx, np.take_along_axis(pre, idx, axis=1), axis=1)
    x_hat = np.einsum("nk,nkd->nd", np.take_along_axis(f, idx, 1), s["W_dec"][idx]) + s["b_dec"]
    return f, x_hat


@pytest.mark.parametrize("transcode", [False, True])
def test_sparsify_folder_encodes_as_its_topk(tmp_path, transcode):
    s = _sparsify_folder(tmp_path / "layers.1", transcode=transcode)
    sae = io.load(tmp_path / "layers.1")
    assert sae.architecture == "topk" and sae.k == 3 and sae.d_sae == 32
    assert sae.cfg.apply_b_dec_to_input is (not transcode)
    assert sae.cfg.hook_name == "layers.1"
    x = _x(8)
    f_ref, xhat_ref = _sparsify_numpy(s, x, 3, transcode)
    with torch.no_grad():
        f = sae.encode(torch.from_numpy(x))
        np.testing.assert_allclose(f.numpy(), f_ref, **TOL)
        np.testing.assert_allclose(sae.decode(f).numpy(), xhat_ref, rtol=1e-5, atol=1e-5)
    assert ((f != 0).sum(-1) == 3).all()


def test_sparsify_num_latents_and_parent_folder_hint(tmp_path):
    _sparsify_folder(tmp_path / "layers.0", n=24, num_latents=24, expansion_factor=32)
    assert io.load(tmp_path / "layers.0").d_sae == 24
    with pytest.raises(InvalidInputError, match=r"layers\.0"):
        io.load(tmp_path)  # the parent of the hook-point folders


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"activation": "groupmax"}, "groupmax"),
        ({"skip_connection": True}, "skip"),
        ({"k": 33}, "k=33"),
        ({"num_latents": 40}, "encoder.weight"),
    ],
)
def test_sparsify_bad_configs_are_refused(tmp_path, extra, match):
    _sparsify_folder(tmp_path / "layers.2", **extra)
    with pytest.raises(WhyboxError, match=match):
        io.load(tmp_path / "layers.2")


# ------------------------------------------------------------------ SAELens edge cases ----
def _saelens_folder(root, cfg, tensors):
    root.mkdir(parents=True, exist_ok=True)
    (root / "cfg.json").write_text(json.dumps(cfg))
    safetensors_torch.save_file(
        {k: torch.as_tensor(v).contiguous() for k, v in tensors.items()},
        str(root / "sae_weights.safetensors"),
    )


def _std_tensors(d_in=6, d_sae=10, seed=0):
    r = _rng(seed)
    return {
        "W_enc": r.normal(size=(d_in, d_sae)).astype("f4"),
        "W_dec": r.normal(size=(d_sae, d_in)).astype("f4"),
        "b_enc": (0.1 * r.normal(size=d_sae)).astype("f4"),
        "b_dec": (0.3 * r.normal(size=d_in)).astype("f4"),
    }


def _encode_numpy(t, x, *, k=None, threshold=None, scale=1.0, apply_b_dec=True):
    xin = x.astype(np.float64) * scale
    if apply_b_dec:
        xin = xin - t["b_dec"]
    pre = xin @ t["W_enc"].astype(np.float64) + t["b_enc"]
    f = np.maximum(pre, 0)
    if threshold is not None:
        f = f * (pre > threshold)
    if k is not None:
        idx = np.argsort(-pre, axis=1)[:, k:]
        np.put_along_axis(f, idx, 0.0, axis=1)
    return f


def test_pre_6_config_names_load(tmp_path):
    t = _std_tensors()
    cfg = {
        "d_in": 6,
        "d_sae": 10,
        "dtype": "torch.float32",
        "hook_point": "blocks.2.hook_resid_pre",
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 4},
        "normalize_activations": False,
        "model_name": "gpt2",
    }
    _saelens_folder(tmp_path, cfg, t)
    sae = io.load(tmp_path)
    assert sae.architecture == "topk" and sae.k == 4
    assert sae.cfg.hook_name == "blocks.2.hook_resid_pre" and sae.cfg.model_name == "gpt2"
    x = _x(6)
    with torch.no_grad():
        np.testing.assert_allclose(
            sae.encode(torch.from_numpy(x)).numpy(), _encode_numpy(t, x, k=4), **TOL
        )


def test_log_threshold_and_scaler_file(tmp_path):
    t = _std_tensors()
    thr = (0.1 + 0.5 * _rng(3).random(10)).astype("f4")
    cfg = {
        "d_in": 6,
        "d_sae": 10,
        "architecture": "jumprelu",
        "normalize_activations": "expected_average_only_in",
        "metadata": {"sae_lens_version": "6.1.0"},
    }
    _saelens_folder(tmp_path, cfg, {**t, "log_threshold": np.log(thr)})
    (tmp_path / "activation_scaler.json").write_text(json.dumps({"scaling_factor": 1.7}))
    sae = io.load(tmp_path)
    assert sae.scaling_factor == pytest.approx(1.7)
    x = _x(6)
    with torch.no_grad():
        f = sae.encode(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(
        f, _encode_numpy(t, x, threshold=thr, scale=1.7), rtol=1e-5, atol=1e-5
    )


def test_scaling_without_scaler_file_warns_and_reads_as_is(tmp_path):
    t = _std_tensors()
    cfg = {"d_in": 6, "d_sae": 10, "architecture": "standard"}
    cfg["normalize_activations"] = "expected_average_only_in"
    _saelens_folder(tmp_path, cfg, t)
    with pytest.warns(UserWarning, match="activation_scaler.json"):
        sae = io.load(tmp_path)
    assert sae.scaling_factor is None
    x = _x(6)
    with torch.no_grad():
        np.testing.assert_allclose(
            sae.encode(torch.from_numpy(x)).numpy(), _encode_numpy(t, x), **TOL
        )


@pytest.mark.parametrize(
    "cfg_extra, error, match",
    [
        ({"architecture": "mystery"}, InvalidParameterError, "'standard', 'topk', 'jumprelu'"),
        ({"architecture": "gated"}, InvalidParameterError, "not supported"),
        ({"architecture": "topk", "k": 11}, InvalidParameterError, "k=11"),
        ({"architecture": "standard", "d_sae": 12}, InvalidInputError, "W_enc has shape"),
        ({"architecture": "jumprelu"}, InvalidInputError, "threshold"),
        (
            {"architecture": "standard", "normalize_activations": "layer_norm"},
            InvalidParameterError,
            "layer_norm",
        ),
        ({"architecture": "standard", "d_in": "six"}, InvalidInputError, "d_in must be an integer"),
    ],
)
def test_bad_saelens_configs_are_refused(tmp_path, cfg_extra, error, match):
    _saelens_folder(tmp_path, {"d_in": 6, "d_sae": 10, **cfg_extra}, _std_tensors())
    with pytest.raises(error, match=match):
        io.load(tmp_path)


def test_missing_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        io.load(tmp_path / "nowhere")
    with pytest.raises(InvalidInputError, match="holds no SAE"):
        io.load(tmp_path)
    _saelens_folder(
        tmp_path / "a", {"d_in": 6, "d_sae": 10, "architecture": "standard"}, _std_tensors()
    )
    (tmp_path / "a" / "cfg.json").unlink()
    with pytest.raises(InvalidInputError, match=r"cfg\.json"):
        io.load(tmp_path / "a")
    _saelens_folder(
        tmp_path / "b", {"d_in": 6, "d_sae": 10, "architecture": "standard"}, _std_tensors()
    )
    (tmp_path / "b" / "sae_weights.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InvalidInputError, match="corrupt"):
        io.load(tmp_path / "b")
    _saelens_folder(
        tmp_path / "c", {"d_in": 6, "d_sae": 10, "architecture": "standard"}, _std_tensors()
    )
    (tmp_path / "c" / "cfg.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        io.load(tmp_path / "c")
    tensors = _std_tensors()
    del tensors["b_enc"]
    _saelens_folder(tmp_path / "d", {"d_in": 6, "d_sae": 10, "architecture": "standard"}, tensors)
    with pytest.raises(InvalidInputError, match="lacks b_enc"):
        io.load(tmp_path / "d")
    (tmp_path / "e.safetensors").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is a file"):
        io.load(tmp_path / "e.safetensors")


# ------------------------------------------------------------------ whybox round trip ----
ARCH_KW = {
    "standard": {},
    "topk": {"k": 4},
    "jumprelu": {},
    "batchtopk": {"k": 4},
    "matryoshka": {"k": 4, "matryoshka_widths": (5, 12, 20)},
}


# SAELens has no TopK transcoder, so save refuses one (tests/sae/test_saelens_transcoder_roundtrip.py)
ROUND_TRIPS = [(a, t) for t in (False, True) for a in ARCH_KW if not (a == "topk" and t)]


@pytest.mark.parametrize("arch, transcoder", ROUND_TRIPS)
def test_save_load_round_trip(tmp_path, arch, transcoder):
    kw = dict(ARCH_KW[arch])
    if transcoder:
        kw.update(d_out=7, hook_name_out="blocks.1.mlp.out")
    cfg = SAEConfig(
        d_in=D,
        d_sae=20,
        architecture=arch,
        hook_name="blocks.1.ln2",
        l1_coefficient=3.5,
        aux_k=9,
        model_name="tiny",
        **kw,
    )
    sae = SAE.create(cfg, random_state=3)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.3)
        if arch == "jumprelu":
            sae.set_threshold_(torch.linspace(0.01, 0.4, 20))
        if arch in ("batchtopk", "matryoshka"):
            sae.topk_threshold.fill_(0.1)
    sae.save(tmp_path / "sae")
    back = io.load(tmp_path / "sae")
    assert back.architecture == arch and type(back) is type(sae)
    assert (back.k, back.d_out, back.is_transcoder) == (sae.k, sae.d_out, sae.is_transcoder)
    assert back.cfg.matryoshka_widths == sae.cfg.matryoshka_widths
    assert back.cfg.hook_name == "blocks.1.ln2" and back.cfg.model_name == "tiny"
    assert back.cfg.hook_name_out == sae.cfg.hook_name_out
    assert (back.cfg.l1_coefficient, back.cfg.aux_k) == (3.5, 9)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name
    x = torch.from_numpy(_x(D))
    with torch.no_grad():
        np.testing.assert_allclose(back.encode(x).numpy(), sae.encode(x).numpy(), **TOL)
    assert sorted(os.listdir(tmp_path / "sae")) == ["cfg.json", "sae_weights.safetensors"]


def test_save_is_atomic_on_error(tmp_path, monkeypatch):
    folder = tmp_path / "sae"
    first = SAE.create(SAEConfig(d_in=6, d_sae=10, architecture="topk", k=2), random_state=0)
    first.save(folder)
    (folder / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = {"n": 0}
    real_replace = os.replace

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # the weights are in place, the config rename fails
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    second = SAE.create(SAEConfig(d_in=6, d_sae=12, architecture="standard"), random_state=1)
    with pytest.raises(OSError, match="disk full"):
        second.save(folder)
    monkeypatch.setattr(os, "replace", real_replace)
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # old weights restored, no temporary files left
    assert io.load(folder).d_sae == 10


def test_save_refuses_bad_targets(tmp_path):
    sae = SAE.create(SAEConfig(d_in=6, d_sae=10, architecture="standard"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidParameterError, match="is a file"):
        sae.save(tmp_path / "file")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        sae.save(tmp_path / "no" / "such" / "folder")
    with pytest.raises(InvalidParameterError, match="whybox SAE"):
        io.save_sae(object(), tmp_path / "x")


# ------------------------------------------------------------------ sites on a model ----
@pytest.fixture(scope="module")
def gpt2():
    return build("gpt2")


def _saved(tmp_path, d_in, hook_name, name="sae", **kw):
    cfg = SAEConfig(d_in=d_in, d_sae=16, architecture="standard", hook_name=hook_name, **kw)
    SAE.create(cfg).save(tmp_path / name)
    return tmp_path / name


def test_site_width_checks(tmp_path, gpt2):
    ok = io.load(_saved(tmp_path, D, "blocks.1.resid_post"), model=gpt2)
    assert ok.cfg.hook_name == "blocks.1.resid_post"
    io.load(_saved(tmp_path, D, "blocks.1.hook_resid_post", "tl"), model=gpt2)  # TL alias
    with pytest.raises(InvalidInputError, match=f"d_in=16.*width {D}"):
        io.load(_saved(tmp_path, 16, "blocks.1.resid_post", "narrow"), model=gpt2)
    d_mlp = int(gpt2.config.n_inner or 4 * D)
    io.load(_saved(tmp_path, d_mlp, "blocks.0.mlp.post", "mlp"), model=gpt2)
    with pytest.raises(InvalidInputError, match=f"width {d_mlp}"):
        io.load(_saved(tmp_path, D, "blocks.0.mlp.post", "mlp_bad"), model=gpt2)


def test_site_argument_overrides_and_module_paths(tmp_path, gpt2):
    folder = _saved(tmp_path, D, "blocks.9.resid_post")
    with pytest.raises(InvalidParameterError, match="site="):
        io.load(folder, model=gpt2)  # the folder's site does not exist on this model
    sae = io.load(folder, model=gpt2, site="blocks.2.resid_pre")
    assert sae.cfg.hook_name == "blocks.2.resid_pre"
    assert sae.cfg.metadata["source_hook_name"] == "blocks.9.resid_post"
    io.load(folder, model=gpt2, site="transformer.h.0.ln_1")  # a module path, probed
    d_mlp = int(gpt2.config.n_inner or 4 * D)
    with pytest.raises(InvalidInputError, match=f"width {d_mlp}"):
        io.load(folder, model=gpt2, site="transformer.h.0.mlp.c_fc")
    with pytest.raises(InvalidParameterError, match="no hook point"):
        io.load(folder, model=gpt2, site="blocks.0.nonsense")
    no_site = _saved(tmp_path, D, None, "nosite")
    with pytest.raises(InvalidParameterError, match="site="):
        io.load(no_site, model=gpt2)


def test_sparsify_folder_name_resolves_on_the_model(tmp_path, gpt2):
    _sparsify_folder(tmp_path / "h.1", d_in=D, n=64)
    sae = io.load(tmp_path / "h.1", model=gpt2)  # 'h.1' is 'transformer.h.1' in the model
    assert sae.d_in == D
    _sparsify_folder(tmp_path / "h.0.mlp.c_fc", d_in=D, n=64)
    with pytest.raises(InvalidInputError, match="width"):
        io.load(tmp_path / "h.0.mlp.c_fc", model=gpt2)


def test_transcoder_output_site_is_checked(tmp_path, gpt2):
    good = _saved(tmp_path, D, "blocks.0.ln2", "tc", d_out=D, hook_name_out="blocks.0.mlp.out")
    assert io.load(good, model=gpt2).is_transcoder
    bad = _saved(tmp_path, D, "blocks.0.ln2", "tc_bad", d_out=7, hook_name_out="blocks.0.mlp.out")
    with pytest.raises(InvalidInputError, match="d_out=7"):
        io.load(bad, model=gpt2)
