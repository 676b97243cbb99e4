"""TransformerLens' short keys on an ActivationCache: ``cache["pattern", 0]`` and friends.

Oracles: TransformerLens 4.x's own ``utilities.get_act_name`` (each short key must give the very
tensor its full hook name gives) and TransformerLens' own ``ActivationCache`` of a
``TransformerBridge`` run of the same model (``tl_cache[key]`` for the same tuple key).
"""

from __future__ import annotations

import copy
import warnings

import pytest

from tests.internals.tiny import LAYERS, build, input_ids, torch
from whybox.errors import InvalidParameterError
from whybox.internals.cache import ActivationCache, run_with_cache

tl_utils = pytest.importorskip("transformer_lens.utilities")  # TL 4.x; 3.x: .utils

# TransformerLens short names (and layer types) that have a whybox site
SHORT = [
    ("resid_pre", None),
    ("resid_mid", None),
    ("resid_post", None),
    ("attn_out", None),
    ("mlp_out", None),
    ("q", None),
    ("k", None),
    ("v", None),
    ("pattern", None),
    ("z", None),
    ("post", None),
    ("query", None),
    ("key", None),
    ("value", None),
    ("attn", None),
    ("mlp_post", None),
    ("normalized", "ln1"),
    ("normalized", "ln2"),
    ("resid_post", "b"),  # get_act_name's "no layer type" aliases
    ("mlp_out", "block"),
    ("k", "a"),  # q, k, v, z, pattern go under attn whatever the layer type
    ("post", "mlp"),
]
# TransformerLens names with no whybox site, and layer types get_act_name puts elsewhere
UNKNOWN = [
    ("scale", 0),
    ("attn_scores", 1),
    ("pre", 0),
    ("rot_q", 2),
    ("result", 0),
    ("normalized", 0),
    ("resid_post", 0, "attn"),
    ("normalized", 1, "mlp"),
]


def _key(name: str, layer: int, layer_type: str | None) -> tuple:
    return (name, layer) if layer_type is None else (name, layer, layer_type)


@pytest.fixture(scope="module")
def gpt2_run():
    model = build("gpt2")
    ids = input_ids(batch=2, pos=6)
    _, cache = run_with_cache(model, ids)  # every standard name but unembed
    return model, ids, cache


@pytest.mark.parametrize("name, layer_type", SHORT)
def test_short_key_is_what_get_act_name_names(gpt2_run, name, layer_type):
    _, _, cache = gpt2_run
    for layer in range(LAYERS):
        full = tl_utils.get_act_name(name, layer, layer_type)
        assert full.startswith(f"blocks.{layer}.") and "hook_" in full
        assert cache[_key(name, layer, layer_type)] is cache[full], (full, layer)
        assert _key(name, layer, layer_type) in cache
    # negative layers count from the end, as in TransformerLens' ActivationCache
    last = tl_utils.get_act_name(name, LAYERS - 1, layer_type)
    assert cache[_key(name, -1, layer_type)] is cache[last]


def test_short_names_reach_the_sites_whybox_documents(gpt2_run):
    _, _, cache = gpt2_run
    assert cache["pattern", 0] is cache["attn.pattern", 0] is cache["blocks.0.attn.pattern"]
    assert cache["z", 1] is cache["blocks.1.attn.head_out"]
    assert cache["attn_out", 2] is cache["blocks.2.attn.out"]
    assert cache["mlp_out", 0] is cache["blocks.0.mlp.out"]
    assert cache["post", 1] is cache["blocks.1.mlp.post"]
    assert cache["normalized", 2, "ln2"] is cache["blocks.2.ln2"]
    assert torch.equal(cache.stack("pattern"), cache.stack("attn.pattern"))
    assert torch.equal(cache.stack("z"), cache.stack("attn.head_out"))


def test_equal_transformer_lens_own_cache(gpt2_run, tiny_tokenizer):
    from transformer_lens.model_bridge import TransformerBridge

    model, ids, cache = gpt2_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(
            "gpt2", hf_model=copy.deepcopy(model), tokenizer=tiny_tokenizer, device="cpu"
        )
        _, tl_cache = bridge.run_with_cache(ids)
    checked = 0
    for name, layer_type in SHORT:
        if name == "normalized":
            continue  # the bridge calls the norms' outputs ln1.hook_out, not hook_normalized
        for layer in (0, LAYERS - 1, -1):
            key = _key(name, layer, layer_type)
            theirs = tl_cache[key].detach()
            ours = cache[key]
            assert ours.shape == theirs.shape, key
            err = float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12))
            assert err < 1e-4, (key, err)
            checked += 1
    assert checked == 3 * (len(SHORT) - 2)


@pytest.mark.parametrize("key", UNKNOWN)
def test_unknown_short_names_raise_the_helpful_error(gpt2_run, key):
    _, _, cache = gpt2_run
    with pytest.raises(InvalidParameterError) as info:
        cache[key]
    assert isinstance(info.value, KeyError)  # a Mapping: .get and `in` work
    message = str(info.value)
    if len(key) == 2:  # the existing error: what is cached and how to ask for more
        assert f"blocks.{key[1]}.{key[0]}" in message and "Ask run_with_cache" in message
    else:
        assert "'normalized'" in message and "'pattern'" in message
    assert cache.get(key) is None and key not in cache


def test_missing_site_and_bad_layer_keep_their_errors():
    model = build("gpt2")
    _, cache = run_with_cache(model, input_ids(), "blocks.*.resid_post")
    with pytest.raises(InvalidParameterError, match=r"Nearest cached names|It holds 3 names"):
        cache["pattern", 0]  # a known short name that this run did not cache
    with pytest.raises(InvalidParameterError, match="needs an int layer"):
        cache["pattern", "0"]
    assert ("resid_post", 1) in cache and ("pattern", 1) not in cache


def test_a_cached_name_wins_over_the_short_reading():
    t_module, t_pattern = torch.zeros(1, 2), torch.ones(1, 2)
    cache = ActivationCache({"blocks.0.attn": t_module, "blocks.0.attn.pattern": t_pattern})
    assert cache["attn", 0] is t_module  # a raw module path that is cached
    assert cache["pattern", 0] is t_pattern
