"""Integrated gradients on a tiny causal LM against inseq 0.7.1 (Sarti et al. 2023).

inseq attributes each generated token in turn (teacher forcing on a given continuation): at
step ``t`` it runs Captum's ``IntegratedGradients`` (Gauss-Legendre, ``n_steps`` nodes) on the
input embeddings of the prompt plus the ``t`` tokens before, from a baseline of the ``<unk>``
embedding at every position whose id is not the model's end-of-sequence id, for the score of
token ``t`` (``attributed_fn``: its logit, probability, or log-probability with
``logprob=True``). Its granular output ``target_attributions`` is (source, step, hidden);
summed over the hidden size it is the per-token attribution whybox reports.

Where the two are comparable:

* ``TextIntegratedGradients`` (``baseline=<unk> id``, special tokens kept) explains one next
  token; inseq's column ``t`` equals it when the model's ``eos_token_id`` is the ``<bos>`` id
  (then inseq, too, keeps ``<bos>`` in the baseline, and gives it exactly 0).
* ``explain_generation(method="integrated_gradients", baseline="unk")`` replaces every source
  position, ``<bos>`` included, as inseq does when ``eos_token_id`` is not in the prompt; its
  rows (log-probabilities) equal inseq's columns for ``attributed_fn="probability",
  logprob=True``.

inseq is not a dependency of whybox (it pins ``typeguard<=2.13.3``); these tests run where it
is installed with ``pip install --no-deps inseq==0.7.1 treescope==0.1.10`` and skip otherwise.

References
----------
Sarti, G., Feldhus, N., Sickert, L., van der Wal, O., Nissim, M. and Bisazza, A. (2023).
Inseq: an interpretability toolkit for sequence generation models. ACL (demo).

Sundararajan, M., Taly, A. and Yan, Q. (2017). Axiomatic attribution for deep networks. ICML.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.text.tiny_text import causal_lm, gpt_tokenizer, torch

inseq = pytest.importorskip("inseq")

from whybox.text.generation import explain_generation  # noqa: E402
from whybox.text.gradients import TextIntegratedGradients  # noqa: E402

PROMPT = "the cat sat on"
CONTINUATION = " the mat"
STEPS = 16


@pytest.fixture(autouse=True, scope="module")
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inseq_columns(lm, tok, attributed_fn, **kw):
    """inseq's per-step IG: (source tokens, (P + T, T) attributions summed over hidden)."""
    model = inseq.load_model(lm, "integrated_gradients", tokenizer=tok)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.attribute(
            PROMPT,
            generated_texts=PROMPT + CONTINUATION,
            n_steps=STEPS,
            attributed_fn=attributed_fn,
            show_progress=False,
            internal_batch_size=64,
            **kw,
        )
    seq = out.sequence_attributions[0]
    tokens = [t.token for t in seq.target]
    return tokens, seq.target_attributions.sum(-1).double().numpy()


def _close(ours, ref, tol=1e-5):
    ref = np.asarray(ref, dtype=float)
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize(
    ("arch", "value", "fn"), [("gpt2", "logit", "logit"), ("llama", "prob", "probability")]
)
def test_next_token_ig_equals_inseq_step_by_step(arch, value, fn):
    tok = gpt_tokenizer()
    lm = causal_lm(arch)
    bos = tok.bos_token_id
    lm.config.eos_token_id = lm.config.bos_token_id = bos  # inseq keeps <bos> in its baseline
    lm.generation_config.eos_token_id = lm.generation_config.bos_token_id = bos
    tokens, cols = _inseq_columns(lm, tok, fn)
    p = len(tok(PROMPT)["input_ids"])
    cont = tok.encode(CONTINUATION, add_special_tokens=False)
    assert tokens[0] == "<bos>" and len(tokens) == p + len(cont)
    ig = TextIntegratedGradients(lm, tokenizer=tok, value=value)
    for t, target in enumerate(cont):
        prefix = tok.decode(tok(PROMPT)["input_ids"][1:] + cont[:t])
        exp = ig.explain(prefix, target=target, steps=STEPS, baseline=tok.unk_token_id)
        assert exp.feature_names[0] == tokens[1 : p + t]
        assert cols[0, t] == 0.0  # <bos> is not interpolated by either
        _close(exp.values[0], cols[1 : p + t, t])


def test_explain_generation_ig_equals_inseq_logprob_matrix():
    tok = gpt_tokenizer()
    lm = causal_lm("gpt2")  # eos_token_id outside the vocabulary: every position interpolated
    tokens, cols = _inseq_columns(lm, tok, "probability", logprob=True)
    exp = explain_generation(
        lm,
        PROMPT,
        tokenizer=tok,
        generated=CONTINUATION,
        method="integrated_gradients",
        baseline="unk",
        steps=STEPS,
    )
    p = exp.meta["prompt_len"]
    assert len(exp.values) == cols.shape[1] == len(tokens) - p
    for t in range(len(exp.values)):
        assert len(exp.values[t]) == p + t
        _close(exp.values[t], cols[: p + t, t])
    assert abs(cols[0, 0]) > 0  # <bos> interpolated, as in whybox's "unk" baseline
