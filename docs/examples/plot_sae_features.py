"""
A sparse autoencoder on a tiny language model, and its features browsed
========================================================================

:func:`whybox.sae.demo_sae` trains (once, then caches) a TopK sparse autoencoder on the
residual stream of :func:`whybox.zoo.tiny_lm`, a small GPT-2 trained on Python's own
documentation. We read its evaluation, look at how often its latents fire, and browse the
latents whose top contexts are clearly one token.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import whybox as wb

sae, model, tok, evaluation, features = wb.sae.demo_sae("tiny_lm")
print(
    f"L0 {evaluation.l0:.1f} latents per token, fraction of variance unexplained {evaluation.fvu:.3f}"
)

# %%
# Feature density: most latents should fire rarely; dead latents (never) and dense ones
# (on most tokens) are the two failure modes.
density = np.asarray(features.array("density"))
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(np.log10(density[density > 0]), bins=40)
ax.set_xlabel("log10(fraction of tokens where the latent fires)")
ax.set_ylabel("latents")
ax.set_title(f"{int((density == 0).sum())} dead of {density.size}")
fig.tight_layout()

# %%
# The purest latents: their top activating contexts are mostly one token.
concepts = wb.sae.concept_features(features, n=4, min_chars=4)
for c in concepts:
    print(f"latent {c['latent']:4d}  token {c['token']!r:12}  purity {c['purity']:.2f}")

# %%
# One latent's page: its top contexts, each token shaded by the latent's activation on it
# (the page data that the SAE report and the dashboard render).
latent = concepts[0]["latent"]
page = features.feature(latent)
contexts = page["top_contexts"][:8]
peak = max(max(c["activations"]) for c in contexts) or 1.0
fig, ax = plt.subplots(figsize=(9, 0.4 * len(contexts) + 0.8))
for row, c in enumerate(contexts):
    x = 0.0
    for token, act in zip(c["tokens"], c["activations"], strict=False):
        text = token.replace("\n", " ")
        ax.text(
            x,
            -row,
            text,
            fontsize=8,
            family="monospace",
            va="center",
            bbox={"facecolor": plt.cm.Reds(0.6 * act / peak), "edgecolor": "none", "pad": 1},
        )
        x += 0.6 * max(len(text), 1)
ax.set_xlim(0, 60)
ax.set_ylim(-len(contexts), 1)
ax.set_axis_off()
ax.set_title(f"latent {latent} (token {concepts[0]['token']!r}): top activating contexts")
fig.tight_layout()
