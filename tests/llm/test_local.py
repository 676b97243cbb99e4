"""LocalBackend against direct computations with the model.

Oracles: ``log p(continuation | prompt)`` from one plain forward pass written here
(``model(ids).logits.log_softmax(-1)``, ids = ids(prompt) + ids(continuation)); greedy text
from ``model.generate(do_sample=False)`` one prompt at a time; the same prompt alone and in a
padded batch. Models: the zoo's tiny GPT-2 (byte-level BPE, no BOS) and a tiny random Llama
(rotary positions, grouped-query attention, a tokenizer that prepends BOS), where wrong
position ids under left padding would show.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.llm import as_backend  # noqa: E402
from whybox.llm.local import LocalBackend  # noqa: E402

PROMPTS = [
    "The for statement is used to",
    "A class is a",
    "x",
    "The return value of a function call is",
]
CONTS = [" iterate over the items", " blueprint", " = 1", " None"]


@pytest.fixture(scope="module")
def gpt():
    from whybox.zoo.tinylm import tiny_lm

    model, tok = tiny_lm(seed=0)
    return model.eval(), tok


@pytest.fixture(scope="module")
def llama():
    from tests.internals.tiny import build
    from tests.text.tiny_text import gpt_tokenizer

    return build("llama", seed=1), gpt_tokenizer(bos=True)


LLAMA_PROMPTS = ["the cat sat on", "a dog", "it is very", "the mat is not a good cat"]
LLAMA_CONTS = [" the mat", " sat", " good", " dog ."]


def direct_logprob(model, tok, prompt, cont, *, shift=1):
    """The oracle: one forward pass over ids(prompt) + ids(cont); ``shift=0`` is a
    deliberately wrong variant (reads the logits at the token itself)."""
    p = tok(prompt)["input_ids"] or [tok.bos_token_id or tok.eos_token_id]
    c = tok(cont, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = model(torch.tensor([p + c])).logits[0].double().log_softmax(-1)
    return sum(float(lp[len(p) + k - shift, c[k]]) for k in range(len(c)))


@pytest.mark.parametrize("which", ["gpt", "llama"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("share_prefix", [True, False])
def test_logprobs_equal_a_direct_forward(request, which, batch_size, share_prefix):
    model, tok = request.getfixturevalue(which)
    prompts, conts = (PROMPTS, CONTS) if which == "gpt" else (LLAMA_PROMPTS, LLAMA_CONTS)
    backend = LocalBackend(model, tok, batch_size=batch_size, share_prefix=share_prefix)
    # distinct prompts (left-padded batches) and one prompt with every continuation (shared)
    p = prompts + [prompts[0]] * len(conts)
    c = conts + conts
    got = backend.logprobs(p, c)
    want = np.array([direct_logprob(model, tok, a, b) for a, b in zip(p, c, strict=True)])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert backend.calls == len(p)
    # the comparison can fail: an off-by-one read of the logits is far away
    wrong = np.array([direct_logprob(model, tok, a, b, shift=0) for a, b in zip(p, c, strict=True)])
    assert np.abs(wrong - want).max() > 1e-2  # 1000x the tolerance


def test_shared_prefix_runs_the_prompt_once(gpt):
    model, tok = gpt
    prompt = PROMPTS[3]
    n_p = len(tok(prompt)["input_ids"])
    n_c = [len(tok(c, add_special_tokens=False)["input_ids"]) for c in CONTS]
    shared = LocalBackend(model, tok, batch_size=2)
    got = shared.logprobs(prompt, CONTS)
    # prompt once, then each chunk of 2 continuations right-padded to its longest
    chunks = [n_c[i : i + 2] for i in range(0, len(n_c), 2)]
    assert shared.tokens_processed == n_p + sum(len(ch) * max(ch) for ch in chunks)
    plain = LocalBackend(model, tok, batch_size=1, share_prefix=False)
    np.testing.assert_allclose(plain.logprobs(prompt, CONTS), got, atol=1e-5)
    assert plain.tokens_processed == sum(n_p + k for k in n_c)


def test_tokenisation_convention(gpt):
    """Separate tokenisation, trailing spaces of the prompt moved to the continuation
    (lm-evaluation-harness); an empty continuation has log-probability 0."""
    model, tok = gpt
    b = LocalBackend(model, tok)
    a, moved, empty = b.logprobs(["Q:", "Q: ", "Q:"], [" yes", "yes", ""])
    assert a == pytest.approx(direct_logprob(model, tok, "Q:", " yes"), abs=1e-5)
    assert moved == pytest.approx(a, abs=1e-9)
    assert empty == 0.0


def test_empty_prompt_starts_from_the_start_token(gpt):
    model, tok = gpt
    got = LocalBackend(model, tok).logprobs("", " The")
    ids = [tok.eos_token_id] + tok(" The", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    want = sum(float(lp[k - 1, ids[k]]) for k in range(1, len(ids)))
    assert got[0] == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("which", ["gpt", "llama"])
def test_greedy_generation_equals_model_generate(request, which):
    model, tok = request.getfixturevalue(which)
    prompts = PROMPTS if which == "gpt" else LLAMA_PROMPTS
    got = LocalBackend(model, tok, batch_size=3).generate(prompts, max_new_tokens=12)
    for prompt, text in zip(prompts, got, strict=True):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=12,
                pad_token_id=pad,
            )
        assert text == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("which", ["gpt", "llama"])
def test_alone_equals_padded_batch(request, which):
    """A short prompt generated alone and inside a batch of longer ones (left padding):
    same text, same token log-probabilities to 1e-5."""
    model, tok = request.getfixturevalue(which)
    prompts = PROMPTS if which == "gpt" else LLAMA_PROMPTS
    short = min(prompts, key=len)
    alone = LocalBackend(model, tok, batch_size=1).generate_with_logprobs(short, max_new_tokens=10)
    batch = LocalBackend(model, tok, batch_size=8).generate_with_logprobs(
        [*prompts, short], max_new_tokens=10
    )
    assert batch[-1]["text"] == alone[0]["text"]
    assert batch[-1]["token_ids"] == alone[0]["token_ids"]
    np.testing.assert_allclose(batch[-1]["logprobs"], alone[0]["logprobs"], atol=1e-5)
    # the generated tokens' log-probabilities are log p(token | prompt, earlier tokens)
    for out, prompt in ((alone[0], short), (batch[0], prompts[0])):
        sub = LocalBackend(model, tok).logprobs(prompt, out["text"])[0]
        if tok(out["text"], add_special_tokens=False)["input_ids"] == out["token_ids"]:
            assert sub == pytest.approx(sum(out["logprobs"]), abs=1e-4)


def test_seeded_sampling(gpt):
    model, tok = gpt
    a = LocalBackend(model, tok, batch_size=1).generate(
        PROMPTS, max_new_tokens=8, temperature=1.0, random_state=3
    )
    b = LocalBackend(model, tok, batch_size=4).generate(
        PROMPTS, max_new_tokens=8, temperature=1.0, random_state=3
    )
    c = LocalBackend(model, tok).generate(
        PROMPTS, max_new_tokens=8, temperature=1.0, random_state=4
    )
    assert a == b  # independent of the batch size
    assert a != c  # the seed matters
    # a vanishing temperature is greedy decoding
    cold = LocalBackend(model, tok).generate(PROMPTS, max_new_tokens=8, temperature=1e-4)
    assert cold == LocalBackend(model, tok).generate(PROMPTS, max_new_tokens=8)


def test_stop_strings_cut_the_text(gpt):
    model, tok = gpt
    b = LocalBackend(model, tok)
    full = b.generate(PROMPTS[0], max_new_tokens=12)[0]
    cut = b.generate(PROMPTS[0], max_new_tokens=12, stop=["\n"])[0]
    assert cut == full.split("\n")[0]


def test_long_inputs(gpt):
    model, tok = gpt
    b = LocalBackend(model, tok, max_length=16)
    long_prompt = " ".join(["the value"] * 20)
    with pytest.warns(UserWarning, match="cut to its last"):
        got = b.logprobs(long_prompt, " of")[0]
    ids = tok(long_prompt)["input_ids"]
    c = tok(" of", add_special_tokens=False)["input_ids"]
    kept = ids[-(16 - len(c)) :]
    with torch.no_grad():
        lp = model(torch.tensor([kept + c])).logits[0].log_softmax(-1)
    assert got == pytest.approx(float(lp[len(kept) - 1, c[0]]), abs=1e-5)
    with pytest.raises(InvalidInputError, match="max_length"):
        b.logprobs("x", " value" * 40)


def test_bad_input(gpt):
    model, tok = gpt
    with pytest.raises(UnsupportedModelError, match="CallableBackend"):
        LocalBackend(object(), tok)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        LocalBackend(model, tok, batch_size=0)
    with pytest.raises(InvalidParameterError, match="chat_template=False"):
        LocalBackend(model, tok, chat_template=True)
    with pytest.raises(InvalidInputError, match="continuations"):
        LocalBackend(model, tok).logprobs(["a", "b"], ["x", "y", "z"])
    assert isinstance(as_backend(model, tokenizer=tok), LocalBackend)
    assert "LocalBackend(" in repr(LocalBackend(model, tok))


class _NoCache(torch.nn.Module):
    """A model that returns no KV cache (as some custom models do)."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config = model, model.config

    def forward(self, **kw):
        out = self.inner(**kw)
        out.past_key_values = None
        return out


def test_shared_prompt_without_a_kv_cache(gpt):
    model, tok = gpt
    b = LocalBackend(_NoCache(model), tok, batch_size=3)
    got = b.logprobs(PROMPTS[0], CONTS)
    want = [direct_logprob(model, tok, PROMPTS[0], c) for c in CONTS]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_chat_template(gpt):
    model, tok = gpt
    tok = copy.deepcopy(tok)
    tok.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    b = LocalBackend(model, tok, chat_template=True)
    formatted = "[user] A class is\n[assistant]"
    assert b.logprobs("A class is", " a")[0] == pytest.approx(
        direct_logprob(model, tok, formatted, " a"), abs=1e-5
    )
    assert b.generate("A class is", max_new_tokens=6) == LocalBackend(model, tok).generate(
        formatted, max_new_tokens=6
    )
