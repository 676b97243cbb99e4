"""The tuned lens (whybox.internals.tuned_lens; Belrose et al. 2023).

Oracles: the logit lens (an untrained tuned lens must equal it bit for bit), the KL
divergence measured independently through :meth:`LogitLens.kl_to_final` on held-out text a
small GPT-2 trained here never saw, and the saved files themselves.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.internals.tiny import build, hooks_left, input_ids
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.internals.lens import logit_lens
from whybox.internals.tuned_lens import TunedLens

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_CTX = 48


@pytest.fixture(autouse=True)
def _one_thread():
    """Two shared cores: one torch thread is several times faster than two competing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _corpus() -> tuple[torch.Tensor, torch.Tensor]:
    """Byte-level chunks (n, _CTX) of Python's own documentation: training text from the
    first topics, held-out text from the last ones (no overlap)."""
    from pydoc_data.topics import topics

    texts = list(topics.values())

    def chunks(parts: list[str]) -> torch.Tensor:
        raw = np.frombuffer("\n".join(parts).encode("utf-8"), dtype=np.uint8).astype(np.int64)
        n = len(raw) // _CTX
        return torch.as_tensor(raw[: n * _CTX].reshape(n, _CTX))

    return chunks(texts[:120]), chunks(texts[-20:])


_CONFIG = {"n_layer": 4, "n_embd": 48, "n_head": 4, "steps": 200, "batch": 16, "lr": 3e-3}


def _train(config: dict, seed: int) -> dict[str, np.ndarray]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # runs before the per-test fixture; one thread is faster here
    try:
        return _train_one_thread(config, seed)
    finally:
        torch.set_num_threads(threads)


def _train_one_thread(config: dict, seed: int) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    model = _gpt2(config)
    train, _ = _corpus()
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"])
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(config["steps"]):
        batch = train[torch.randint(len(train), (config["batch"],), generator=g)]
        loss = model(batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _gpt2(config: dict):
    cfg = transformers.GPT2Config(
        n_layer=config["n_layer"],
        n_embd=config["n_embd"],
        n_head=config["n_head"],
        vocab_size=256,
        n_positions=_CTX,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager")


@pytest.fixture(scope="module")
def byte_lm():
    """A 4-layer GPT-2 trained here on bytes of pydoc text (cached after the first run)."""
    from whybox.zoo.cache import cached_model

    weights = cached_model("test-tuned-lens-bytes-gpt2", _train, _CONFIG, 0, version="2")
    model = _gpt2(_CONFIG)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()}, strict=False)
    return model.eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma2"])
def test_untrained_tuned_lens_is_the_logit_lens_bit_for_bit(arch):
    model = build(arch)
    lens = TunedLens(n_steps=0).fit(model, input_ids(batch=4, pos=9, seed=1))
    assert lens.labels_ == ["embed", "L0", "L1"]
    assert torch.count_nonzero(lens.weight_) == 0 and torch.count_nonzero(lens.bias_) == 0
    ids = input_ids()
    tuned = lens.logits(model, ids)
    plain = logit_lens(model, ids)
    assert tuned.labels == plain.labels and tuned.method == "tuned_lens"
    assert torch.equal(tuned.logits, plain.logits)


def test_training_lowers_the_held_out_kl_below_the_logit_lens(byte_lm):
    train, held_out = _corpus()
    lens = TunedLens(n_steps=150, tokens_per_step=512, max_tokens=8192, random_state=0)
    lens.fit(byte_lm, train[:400])
    table = lens.evaluate(byte_lm, held_out[:96])
    print("\nheld-out KL(model || lens), nats per token\n", table.round(4).to_string())
    middle = table.iloc[:-1]
    assert (middle.tuned_lens_kl < middle.logit_lens_kl).all()
    assert (middle.tuned_lens_kl < 0.6 * middle.logit_lens_kl).all()  # measured: 0.1-0.4x
    assert table.iloc[-1].tolist() == [0.0, 0.0]
    assert lens.history_[-1] < 0.5 * lens.history_[0]
    # the same figures through the LogitLens path (no shared code with evaluate's caching)
    batch = held_out[:96]
    plain = logit_lens(byte_lm, batch).kl_to_final().mean(dim=(1, 2))
    tuned_res = lens.logits(byte_lm, batch)
    tuned = tuned_res.kl_to_final().mean(dim=(1, 2))
    np.testing.assert_allclose(plain.numpy(), table.logit_lens_kl.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(tuned.numpy(), table.tuned_lens_kl.to_numpy(), rtol=1e-4)
    # and the tuned lens agrees with the model's top token more often at every middle layer
    with torch.no_grad():
        top = byte_lm(batch).logits.argmax(-1)
    agree = {
        name: (res.logits.argmax(-1) == top).float().mean(dim=(1, 2))
        for name, res in (("plain", logit_lens(byte_lm, batch)), ("tuned", tuned_res))
    }
    print("top-1 agreement with the model:", {k: v.numpy().round(3) for k, v in agree.items()})
    assert torch.all(agree["tuned"][:-1] >= agree["plain"][:-1])


def test_fit_is_deterministic_and_leaves_the_model_unchanged():
    model = build("llama")
    data = input_ids(batch=6, pos=10, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = TunedLens(n_steps=5, tokens_per_step=64, optimizer="adam", random_state=3).fit(model, data)
    b = TunedLens(n_steps=5, tokens_per_step=64, optimizer="adam", random_state=3).fit(model, data)
    c = TunedLens(n_steps=5, tokens_per_step=64, optimizer="adam", random_state=4).fit(model, data)
    assert torch.equal(a.weight_, b.weight_) and torch.equal(a.bias_, b.bias_)
    assert a.history_ == b.history_
    assert not torch.equal(a.weight_, c.weight_)
    assert torch.count_nonzero(a.weight_) > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert hooks_left(model) == []


def test_ragged_ids_texts_and_padded_encodings_cache_the_real_tokens(tiny_tokenizer):
    model = build("gpt2")
    rows = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    lens = TunedLens(n_steps=0, batch_size=2).fit(model, rows)
    assert lens.n_tokens_ == 10
    texts = ["def(x):return(x)", "class(A):pass"]
    n_tok = sum(len(tiny_tokenizer(t)["input_ids"]) for t in texts)
    assert TunedLens(n_steps=0).fit(model, texts, tokenizer=tiny_tokenizer).n_tokens_ == n_tok
    tiny_tokenizer.pad_token = tiny_tokenizer.eos_token
    enc = tiny_tokenizer(texts, return_tensors="pt", padding=True)
    assert TunedLens(n_steps=0).fit(model, enc).n_tokens_ == n_tok
    # padding changes nothing: the cached activations of a padded row are the row's own
    lens_pad = TunedLens(n_steps=0, batch_size=3, max_tokens=10)
    lens_one = TunedLens(n_steps=0, batch_size=1, max_tokens=10)
    from whybox.internals.anatomy import Anatomy

    anat = Anatomy.of(model)
    rng = np.random.default_rng(0)
    a = lens_pad._cache(model, anat, rows, None, rng)
    b = lens_one._cache(model, anat, rows, None, rng)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_save_load_round_trip(tmp_path):
    model = build("qwen2")
    lens = TunedLens(n_steps=3, tokens_per_step=32, random_state=1).fit(model, input_ids(4, 8))
    folder = lens.save(tmp_path / "lens")
    assert sorted(p.name for p in folder.iterdir()) == ["tuned_lens.json", "tuned_lens.safetensors"]
    config = json.loads((folder / "tuned_lens.json").read_text())
    assert config["format"] == "whybox.tuned_lens" and config["model"]["d_model"] == 32
    back = TunedLens.load(folder)
    assert torch.equal(back.weight_, lens.weight_) and torch.equal(back.bias_, lens.bias_)
    assert back.labels_ == lens.labels_ and back.history_ == lens.history_
    assert back.random_state == 1 and back.n_steps == 3
    ids = input_ids()
    assert torch.equal(back.logits(model, ids).logits, lens.logits(model, ids).logits)
    # overwriting an existing save works; no temporary files are left behind
    lens.save(folder)
    assert len(list(folder.iterdir())) == 2
    other = _gpt2({"n_layer": 2, "n_embd": 32, "n_head": 4}).eval()
    with pytest.raises(InvalidInputError, match=r"n_layers 3 \(lens\) vs 2 \(model\)"):
        back.logits(other, ids)


def test_load_refuses_damaged_or_foreign_folders(tmp_path):
    model = build("gpt2")
    lens = TunedLens(n_steps=0).fit(model, input_ids())
    folder = lens.save(tmp_path / "lens")
    with pytest.raises(InvalidInputError, match="not a saved tuned lens"):
        TunedLens.load(tmp_path)
    raw = bytearray((folder / "tuned_lens.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (folder / "tuned_lens.safetensors").write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="SHA-256"):
        TunedLens.load(folder)
    (folder / "tuned_lens.json").write_text('{"format": "other"}')
    with pytest.raises(InvalidInputError, match="not a whybox tuned lens"):
        TunedLens.load(folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidParameterError, match="is a file"):
        lens.save(tmp_path / "file")


def test_bad_input_and_parameters():
    model = build("gpt2")
    with pytest.raises(InvalidParameterError, match="not fitted"):
        TunedLens().logits(model, input_ids())
    with pytest.raises(InvalidParameterError, match="optimizer="):
        TunedLens(optimizer="lbfgs").fit(model, input_ids())
    with pytest.raises(InvalidParameterError, match="n_steps must be at least 0"):
        TunedLens(n_steps=-1).fit(model, input_ids())
    with pytest.raises(InvalidParameterError, match="lr must be"):
        TunedLens(lr=float("nan")).fit(model, input_ids())
    with pytest.raises(InvalidParameterError, match="momentum"):
        TunedLens(momentum=1.0).fit(model, input_ids())
    with pytest.raises(InvalidInputError, match="no tokenizer"):
        TunedLens().fit(model, ["some text"])
    with pytest.raises(InvalidInputError, match="no tokens"):
        TunedLens().fit(model, [[]])
    with pytest.raises(InvalidInputError, match="integers"):
        TunedLens().fit(model, torch.zeros(2, 3))
    with pytest.raises(UnsupportedModelError, match="prediction head"):
        TunedLens(n_steps=0).fit(build("bert"), input_ids())
    assert "not fitted" in repr(TunedLens())
    assert hooks_left(model) == []
