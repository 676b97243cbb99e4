"""Tests of whybox.zoo.modular: a one-layer transformer groks modular addition (Nanda et al. 2023).

The reproduction, at p = 59 (the benchmark runs the paper's p = 113): the model first fits
its 30 % training split while test accuracy stays low, then groks (test accuracy > 99 %); its
embedding is sparse in the Fourier basis over token index; projecting the embedding onto the
few key frequencies keeps the accuracy and projecting them out destroys it.

Oracles: accuracies are computed here from ``model(X)`` by argmax; the Fourier norms are
checked against ``numpy.fft.rfft`` of the embedding (``|c_cos|^2 + |c_sin|^2 = 2 |F_k|^2 / p``);
the ablation is redone here by zeroing rfft coefficients and ``irfft`` (a different route to the
same projection) and evaluating the model on the edited embedding.

Measured on seed 0 (p 59, learning rate 5e-3, weight decay 3, 1500 steps, one thread, ~35 s):
training split fitted from step 100 while test accuracy stays < 50 % until step 800; test
accuracy > 99 % from step 1000; 3 key frequencies (4, 20, 21) carry 97 % of the non-constant
squared norm of the embedding (norms 4.8-5.5 against a median of 0.32); keeping only them:
accuracy 1.0 over all p^2 pairs; removing them: 0.019 (chance is 1 / 59 = 0.017); keeping
the next three frequencies instead: 0.018.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import whybox as wb  # noqa: E402
from whybox.errors import InvalidInputError, InvalidParameterError  # noqa: E402
from whybox.internals.anatomy import Anatomy  # noqa: E402
from whybox.zoo.modular import (  # noqa: E402
    ablate_frequencies,
    fourier_basis,
    fourier_key_frequencies,
    modular_addition_data,
    modular_addition_model,
)

P = 59
RECIPE = {"steps": 1500, "lr": 5e-3}  # the suite's smaller p groks in ~1000 steps with this


@pytest.fixture(scope="module")
def grokked(zoo_cache):
    return modular_addition_model(p=P, seed=0, cache_dir=zoo_cache, **RECIPE)


def _acc(model, X, y) -> float:
    with torch.no_grad():
        return float((model(X)[:, -1].argmax(-1) == y).double().mean())


def test_data_is_every_pair_with_a_seeded_split() -> None:
    d = modular_addition_data(7, frac_train=0.3, seed=2)
    a, b = np.divmod(np.arange(49), 7)
    np.testing.assert_array_equal(d["X"].numpy(), np.stack([a, b, np.full(49, 7)], 1))
    np.testing.assert_array_equal(d["y"].numpy(), (a + b) % 7)
    train, test = d["train"].numpy(), d["test"].numpy()
    assert len(train) == 15 and len(test) == 34  # round(0.3 * 49)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(49))
    assert torch.equal(d["train"], modular_addition_data(7, 0.3, seed=2)["train"])
    assert not torch.equal(d["train"], modular_addition_data(7, 0.3, seed=3)["train"])
    with pytest.raises(InvalidParameterError, match="frac_train"):
        modular_addition_data(7, frac_train=1.0)


def test_layout_last_position_shortcut_and_anatomy() -> None:
    model, info = modular_addition_model(p=7, steps=3, cache=False)
    paths = {n for n, _ in model.named_modules()}
    assert {"embed", "pos_embed", "blocks.0.attn.q_proj", "blocks.0.attn.o_proj",
            "blocks.0.mlp.fc_in", "blocks.0.mlp.fc_out", "unembed"} <= paths  # fmt: skip
    X = info.data["X"]
    with torch.no_grad():
        full = model(X)
        last = model.last_logits(X)
    assert full.shape == (49, 3, 7)
    torch.testing.assert_close(last, full[:, -1], rtol=1e-5, atol=1e-6)
    anat = Anatomy.of(model)  # the probe pass keeps to the model's 3 positions
    assert (anat.n_layers, anat.n_heads, anat.d_head, anat.d_mlp) == (1, 4, 32, 512)
    assert anat.is_causal
    _, cache = wb.run_with_cache(model, X[:5], names="blocks.0.attn.pattern", anatomy=anat)
    pattern = cache["blocks.0.attn.pattern"]
    assert pattern.shape == (5, 4, 3, 3)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(5, 4, 3))
    assert torch.count_nonzero(pattern.triu(1)) == 0  # causal


def test_the_model_groks(grokked) -> None:
    model, info = grokked
    d = info.data
    train_acc = _acc(model, d["X_train"], d["y_train"])
    test_acc = _acc(model, d["X_test"], d["y_test"])
    assert train_acc == 1.0
    assert test_acc > 0.99  # measured 1.0
    assert test_acc == pytest.approx(info.test_accuracy)
    assert len(d["train"]) == round(0.3 * P * P)
    # the grokking signature: a stretch where the training split is fitted and the test
    # split is not, before test accuracy jumps
    h = info.history
    memorised = (h["train_accuracy"] > 0.99) & (h["test_accuracy"] < 0.5)
    assert memorised.any()
    assert info.steps_to_grok is not None
    assert h["step"][memorised].max() < info.steps_to_grok
    assert h["test_accuracy"][h["step"] == info.steps_to_grok][0] > 0.99
    assert (h["test_accuracy"][h["step"] < info.steps_to_grok] <= 0.99).all()


def test_fourier_norms_match_numpy_fft(grokked) -> None:
    model, _ = grokked
    W = model.embed.weight.detach().double().numpy()[:P]
    F = np.fft.rfft(W, axis=0)  # (p // 2 + 1, d)
    expected = np.sqrt((np.abs(F) ** 2).sum(1) * np.r_[1 / P, np.full(P // 2, 2 / P)])
    fa = fourier_key_frequencies(model, P)
    np.testing.assert_allclose(fa.norms, expected, rtol=1e-9, atol=1e-9)
    basis, labels = fourier_basis(P)
    np.testing.assert_allclose(basis @ basis.T, np.eye(P), atol=1e-12)
    assert labels[:3] == ["const", "cos 1", "sin 1"] and len(labels) == P
    # the same answer from the raw embedding matrix (with or without the '=' row)
    assert fourier_key_frequencies(W, P).key == fa.key
    assert fourier_key_frequencies(model.embed.weight, P).key == fa.key


def test_a_handful_of_key_frequencies_carry_the_embedding(grokked) -> None:
    model, _ = grokked
    fa = fourier_key_frequencies(model, P)  # fewest frequencies covering 90 %
    power = fa.norms[1:] ** 2
    assert 1 <= len(fa.key) <= 8  # measured 3
    assert fa.fraction >= 0.9
    assert fa.fraction == pytest.approx(power[np.asarray(fa.key) - 1].sum() / power.sum())
    # sparse: the key frequencies are few of the 29, each far above the median frequency
    assert min(fa.norms[k] for k in fa.key) > 4 * np.median(fa.norms[1:])
    assert fourier_key_frequencies(model, P, k=2).key == fa.key[:2]


def _fft_projection(W, keep):
    F = np.fft.rfft(W, axis=0)
    mask = np.zeros(F.shape[0], dtype=bool)
    mask[0] = True
    mask[list(keep)] = True
    return np.fft.irfft(F * mask[:, None], n=W.shape[0], axis=0)


def test_keeping_key_frequencies_keeps_accuracy_removing_them_destroys_it(grokked) -> None:
    model, _ = grokked
    key = fourier_key_frequencies(model, P).key
    others = [k for k in range(1, P // 2 + 1) if k not in key]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kept = ablate_frequencies(model, P, keep=key)
    removed = ablate_frequencies(model, P, remove=key)
    assert kept >= 0.99  # measured 1.0
    assert removed < 0.1  # measured 0.019, chance 0.017
    assert ablate_frequencies(model, P, remove=others) == kept
    # a control: as many non-key frequencies (the strongest of them) carry nothing
    control = fourier_key_frequencies(model, P, k=len(key) * 2).key[len(key) :]
    assert ablate_frequencies(model, P, keep=control) < 0.2
    # the model passed in is unchanged
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # oracle: the projection by rfft / irfft, evaluated here
    d = modular_addition_data(P)
    for freqs, reported in ((key, kept), (others, removed)):
        edited = copy.deepcopy(model)
        W = edited.embed.weight.detach().double().numpy()
        with torch.no_grad():
            edited.embed.weight[:P] = torch.tensor(_fft_projection(W[:P], freqs)).float()
        assert _acc(edited, d["X"], d["y"]) == pytest.approx(reported, abs=2 / P**2)


def test_bad_arguments_are_refused(grokked) -> None:
    model, _ = grokked
    with pytest.raises(InvalidParameterError, match=r"exactly one of keep= .* and remove="):
        ablate_frequencies(model, P, keep=[1], remove=[2])
    with pytest.raises(InvalidParameterError, match="frequency"):
        ablate_frequencies(model, P, keep=[P])
    with pytest.raises(InvalidInputError, match="p = 61"):
        fourier_key_frequencies(model, 61)
    with pytest.raises(InvalidParameterError, match="weight_decay"):
        modular_addition_model(p=7, weight_decay=-1.0, cache=False)


def test_seeded_training_is_reproducible(tmp_path) -> None:
    a, ia = modular_addition_model(p=11, seed=4, steps=30, cache=False)
    b, _ = modular_addition_model(p=11, seed=4, steps=30, cache_dir=tmp_path)
    c, _ = modular_addition_model(p=11, seed=4, steps=30, cache_dir=tmp_path)  # from the cache
    d, _ = modular_addition_model(p=11, seed=5, steps=30, cache=False)
    for m in (b, c):
        assert all(
            torch.equal(x, y)
            for x, y in zip(a.state_dict().values(), m.state_dict().values(), strict=True)
        )
    assert not torch.equal(a.embed.weight, d.embed.weight)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    assert list(ia.history["step"]) == [30]
