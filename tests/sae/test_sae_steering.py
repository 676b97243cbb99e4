"""SAE latent interventions (sae/steering.py) against hand-written forward hooks: ablating
latent j adds -f_j W_dec[j] at the site, clamping adds (v - f_j) W_dec[j], steering adds
c W_dec[j]; no edit leaves the logits as they were."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tests.internals.tiny import build, hooks_left, input_ids  # noqa: E402
from whybox.errors import InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.sae.models import SAE, SAEConfig  # noqa: E402
from whybox.sae.steering import (  # noqa: E402
    ablate_features,
    add_feature,
    clamp_features,
    edit_features,
    generate_with_features,
    run_with_features,
)

SITE = "blocks.1.resid_post"


def _sae(architecture: str = "topk", seed: int = 0):
    kw = {"k": 6} if architecture == "topk" else {}
    cfg = SAEConfig(d_in=32, d_sae=48, architecture=architecture, hook_name=SITE, **kw)
    sae = SAE.create(cfg, random_state=seed)
    with torch.no_grad():
        sae.b_dec.copy_(0.1 * torch.randn(32, generator=torch.Generator().manual_seed(seed)))
    return sae


def _block(model, arch):
    return {"gpt2": lambda: model.transformer.h[1], "llama": lambda: model.model.layers[1]}[arch]()


def _hand_logits(model, arch, ids, edit):
    """Logits with ``edit(x) -> x'`` applied to block 1's output by a plain forward hook."""

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (edit(output[0]), *output[1:])
        return edit(output)

    handle = _block(model, arch).register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(ids).logits
    finally:
        handle.remove()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def arch_model(request):
    return request.param, build(request.param)


@pytest.fixture(scope="module")
def ids():
    return input_ids(batch=3, pos=9, seed=1)


def _clean(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("architecture", ["topk", "standard"])
def test_no_edit_splice_equals_clean(arch_model, ids, architecture):
    _, model = arch_model
    sae = _sae(architecture)
    clean = _clean(model, ids)
    spliced = run_with_features(model, sae, ids)
    torch.testing.assert_close(spliced, clean, atol=1e-5, rtol=1e-5)
    # the edit enters as decode(f') - decode(f) = 0: not even a rounding of x
    assert torch.equal(spliced, clean)
    dead = int(sae.W_dec.shape[0]) - 1
    with torch.no_grad():
        sae.b_enc[dead] = -1e4  # a latent that never fires: ablating it changes nothing
    assert torch.equal(run_with_features(model, sae, ids, ablate=[dead]), clean)
    # the reconstruction alone is a different model: the error term is what keeps it equal
    bare = run_with_features(model, sae, ids, error_term=False)
    assert (bare - clean).abs().max() > 1e-2
    assert hooks_left(model) == []


def _fired(sae, model, ids):
    from whybox.internals.cache import run_with_cache

    _, cache = run_with_cache(model, ids, names=[SITE])
    f = sae.encode(cache[SITE])
    return int((f > 0).sum(dim=(0, 1)).argmax())


def test_ablation_equals_hand_splice(arch_model, ids):
    arch, model = arch_model
    sae = _sae()
    j = _fired(sae, model, ids)
    W = sae.W_dec.detach()

    def edit(x):
        f = sae.encode(x)
        return x - f[..., j : j + 1] * W[j]

    want = _hand_logits(model, arch, ids, edit)
    with ablate_features(model, sae, [j]):
        got = _clean(model, ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - _clean(model, ids)).abs().max() > 1e-4  # the ablation did something
    assert hooks_left(model) == []


def test_clamp_and_add_equal_hand_splice(arch_model, ids):
    arch, model = arch_model
    sae = _sae()
    j, v, c = 5, 3.0, -2.0
    W = sae.W_dec.detach()

    def edit_clamp(x):
        f = sae.encode(x)
        return x + (v - f[..., j : j + 1]) * W[j]

    with clamp_features(model, sae, {j: v}):
        got = _clean(model, ids)
    torch.testing.assert_close(
        got, _hand_logits(model, arch, ids, edit_clamp), atol=1e-5, rtol=1e-5
    )

    with add_feature(model, sae, j, c):
        got = _clean(model, ids)
    want = _hand_logits(model, arch, ids, lambda x: x + c * W[j])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)

    # several edits at once: ablate one, clamp another, add a third direction
    def edit_all(x):
        f = sae.encode(x)
        return x - f[..., 1:2] * W[1] + (v - f[..., j : j + 1]) * W[j] + c * W[7]

    got = run_with_features(model, sae, ids, ablate=[1], clamp={j: v}, add={7: c})
    torch.testing.assert_close(got, _hand_logits(model, arch, ids, edit_all), atol=1e-5, rtol=1e-5)


def test_generate_with_features_equals_hand_hooked_generate():
    model = build("gpt2")
    sae = _sae()
    prompt = input_ids(batch=1, pos=5, seed=2)
    W = sae.W_dec.detach()
    clean = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0,
                           attention_mask=torch.ones_like(prompt))  # fmt: skip
    same = generate_with_features(model, sae, prompt, max_new_tokens=6)
    torch.testing.assert_close(same, clean)  # no edit: the same tokens
    handle = model.transformer.h[1].register_forward_hook(
        lambda m, a, out: (out[0] + 8.0 * W[3], *out[1:]) if isinstance(out, tuple) else out + 8.0 * W[3]
    )  # fmt: skip
    try:
        want = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0,
                              attention_mask=torch.ones_like(prompt))  # fmt: skip
    finally:
        handle.remove()
    got = generate_with_features(model, sae, prompt, max_new_tokens=6, add={3: 8.0})
    torch.testing.assert_close(got, want)
    assert not torch.equal(got, clean)  # strong steering changes the continuation
    assert hooks_left(model) == []


def test_hooks_removed_after_an_exception(ids):
    model = build("gpt2")
    sae = _sae()
    with pytest.raises(RuntimeError, match="boom"), ablate_features(model, sae, [0]):
        _clean(model, ids)
        raise RuntimeError("boom")
    assert hooks_left(model) == []
    # an exception inside the forward pass (a wrong-width SAE) also leaves no hook behind
    wide = SAE.create(SAEConfig(d_in=16, d_sae=8, architecture="topk", k=2, hook_name=SITE))
    with pytest.raises(InvalidParameterError, match="16-wide"):
        run_with_features(model, wide, ids, ablate=[0])
    assert hooks_left(model) == []


def test_bad_input(ids):
    model = build("gpt2")
    sae = _sae()
    with pytest.raises(InvalidParameterError, match="out of range"):
        with ablate_features(model, sae, [48]):
            pass
    with pytest.raises(InvalidParameterError, match="iterable"):
        with ablate_features(model, sae, 3):
            pass
    with pytest.raises(InvalidParameterError, match="finite"):
        with clamp_features(model, sae, {1: float("nan")}):
            pass
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        generate_with_features(model, sae, "text prompt")
    cfg = SAEConfig(d_in=32, d_sae=8, architecture="topk", k=2, hook_name=SITE,
                    hook_name_out="blocks.1.mlp.out")  # fmt: skip
    with pytest.raises(UnsupportedModelError, match="transcoder"):
        with edit_features(model, SAE.create(cfg), ablate=[0]):
            pass
    bert = build("bert")
    with pytest.raises(UnsupportedModelError, match="generate"):
        generate_with_features(bert, sae, input_ids(batch=1, pos=4))
    assert hooks_left(model) == []
