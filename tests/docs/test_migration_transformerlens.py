"""docs/migration/transformerlens.md runs, and its two sides agree.

The page's ``# whybox`` blocks run in page order in one namespace on the zoo's tiny GPT-2. Its
``# TransformerLens`` blocks run in a second namespace on TransformerLens 4.3's
``TransformerBridge`` booted on a copy of the same weights, and its ``# nnsight`` blocks on
nnsight 0.8 wrapping the same model. The only blocks not run are those whose first line says
"not run here" (loading GPT-2 from the Hub); the test supplies what they would define. The
oracles are the peer libraries themselves: each value the page computes on the whybox side is
compared with the value the peer's block computes.
"""

from __future__ import annotations

import copy
import linecache
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.docs._md_blocks import blocks, run_blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migration" / "transformerlens.md"
NOT_RUN = "not run here"


def _runnable(tag: str) -> tuple[list[str], list[str]]:
    found = blocks(PAGE, tag)
    skipped = [b for b in found if NOT_RUN in b.splitlines()[0]]
    return [b for b in found if b not in skipped], skipped


def _run(sources: list[str], ns: dict, tag: str) -> dict:
    for k, src in enumerate(sources):
        filename = f"{PAGE.name}[{tag} block {k}]"
        # nnsight reads the body of a `with model.trace()` block back from its source file
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        try:
            exec(compile(src, filename, "exec"), ns)  # the page's code
        except Exception as err:
            raise AssertionError(f"'# {tag}' block {k} failed: {err}\n{src[:300]}") from err
    return ns


@pytest.fixture(scope="module")
def sides():
    """(whybox namespace, TransformerLens namespace, nnsight namespace)."""
    from transformer_lens.model_bridge import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers / TransformerLens deprecation notices
        wb_ns = run_blocks(PAGE, "whybox")
        model, tok = wb_ns["model"], wb_ns["tok"]
        bridge = TransformerBridge.boot_transformers(
            "gpt2", hf_model=copy.deepcopy(model), tokenizer=tok, device="cpu"
        )
        tl_blocks, tl_skipped = _runnable("TransformerLens")
        tl_ns = _run(tl_blocks, {"model": bridge, "direction": wb_ns["direction"]}, "TL")
        nn_blocks, nn_skipped = _runnable("nnsight")
        nn_ns = _run(nn_blocks, {"model": model, "ids": wb_ns["ids"]}, "nnsight")
    # only the loading block is replaced, and it is the one the page says is not run
    assert len(tl_skipped) == 1 and "boot_transformers" in tl_skipped[0]
    assert nn_skipped == []
    return wb_ns, tl_ns, nn_ns


def close(ours, theirs, rtol=1e-4):
    ours = np.asarray(torch.as_tensor(ours).detach().double())
    theirs = np.asarray(torch.as_tensor(theirs).detach().double())
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())


def test_every_whybox_block_ran_and_the_model_is_unhooked(sides):
    wb_ns, _, _ = sides
    model = wb_ns["model"]
    assert len(blocks(PAGE, "whybox")) >= 12
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert wb_ns["left"] == []  # the page's own check after a raising hook
    anat = wb_ns["anat"]
    assert (anat.n_layers, anat.n_heads, anat.d_model) == (
        model.config.n_layer,
        model.config.n_head,
        model.config.n_embd,
    )


def test_tokens_equal(sides):
    wb_ns, tl_ns, _ = sides
    assert torch.equal(wb_ns["ids"], tl_ns["tokens"])
    assert [wb_ns["tok"].decode(t) for t in wb_ns["ids"][0]] == tl_ns["model"].to_str_tokens(
        tl_ns["tokens"]
    )


def test_cache_equals_transformer_lens(sides):
    wb_ns, tl_ns, _ = sides
    for name in ("logits", "pattern", "resid", "stacked"):
        close(wb_ns[name], tl_ns[name])
    # the names table: TransformerLens's names of every standard name hold the same tensors
    for ours, theirs in [
        ("blocks.1.attn.head_out", "blocks.1.attn.hook_z"),
        ("blocks.1.mlp.post", "blocks.1.mlp.hook_post"),
        ("blocks.2.resid_mid", "blocks.2.hook_resid_mid"),
        ("blocks.3.attn.q", "blocks.3.attn.hook_q"),
        ("blocks.0.mlp.out", "blocks.0.hook_mlp_out"),
    ]:
        close(wb_ns["cache"][ours], tl_ns["cache"][theirs])


def test_hook_functions_equal(sides):
    wb_ns, tl_ns, _ = sides
    close(wb_ns["ablated"], tl_ns["ablated"])
    assert not torch.allclose(wb_ns["ablated"], wb_ns["logits"])  # the ablation did something


def test_patching_grids_equal(sides):
    wb_ns, tl_ns, _ = sides
    for name in ("resid_grid", "head_grid"):
        theirs = tl_ns[name]
        ours = wb_ns[name]
        assert ours.meta["grid_shape"] == list(theirs.shape)
        close(ours.values[0].reshape(theirs.shape), theirs)
    assert wb_ns["answer"] == tl_ns["answer"] and wb_ns["wrong"] == tl_ns["wrong"]


def test_logit_lens_and_dla_equal(sides):
    wb_ns, tl_ns, _ = sides
    assert wb_ns["labels"] == tl_ns["labels"]
    close(wb_ns["stack"], tl_ns["stack"])
    close(wb_ns["lens_logits"], tl_ns["lens_logits"])
    dla, theirs = wb_ns["dla"], tl_ns["dla"].detach().numpy().T  # (batch, components)
    names = [
        lab.replace("_attn_out", ".attn").replace("_mlp_out", ".mlp")
        for lab in tl_ns["comp_labels"]
    ]
    names = [n if n in ("embed", "pos_embed") else f"L{n}" for n in names]
    ours = dla.values[:, [dla.feature_names.index(n) for n in names]]
    close(ours, theirs)


def test_generation_and_steering_equal(sides):
    wb_ns, tl_ns, _ = sides
    assert torch.equal(wb_ns["generated"], tl_ns["generated"])
    # TransformerLens's compatibility mode (run for its DLA) centres the unembedding, which
    # shifts every logit of a position by one constant: compare log-probabilities
    close(
        torch.log_softmax(wb_ns["steered_logits"], -1),
        torch.log_softmax(tl_ns["steered_logits"].detach(), -1),
    )
    assert isinstance(wb_ns["text"], str) and wb_ns["text"].startswith("The for statement")


def test_nnsight_equal_bit_for_bit(sides):
    wb_ns, _, nn_ns = sides
    block_out = nn_ns["block_out"]
    block_out = block_out if isinstance(block_out, torch.Tensor) else block_out[0]
    assert torch.equal(wb_ns["block_out"], block_out)
    head_in = nn_ns["head_in"]
    head_in = head_in if isinstance(head_in, torch.Tensor) else head_in[0]
    assert torch.equal(wb_ns["head_in"].flatten(-2), head_in)
    zeroed = nn_ns["zeroed"]
    zeroed = zeroed.logits if hasattr(zeroed, "logits") else zeroed
    assert torch.equal(wb_ns["zeroed"], zeroed.detach())
