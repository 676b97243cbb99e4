"""
Induction heads found by activation patching
============================================

:func:`whybox.zoo.induction_model` is a two-layer attention-only transformer trained on
sequences that repeat a random segment; it learns induction heads (Olsson et al., 2022). We
find them twice: by their attention pattern (prefix-matching score) and causally, by patching
each head's output from a run where the repeat can be predicted into one where it cannot.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import whybox as wb

model, info = wb.zoo.induction_model(seed=0)
scores = info.scores  # induction_scores() on 64 held-out repeated sequences
L = 16
clean = wb.zoo.repeated_tokens(8, L, seed=3)  # [x, x]: the second copy is predictable
noise = wb.zoo.repeated_tokens(8, L, seed=4)[:, :L]
corrupted = torch.cat([noise, clean[:, L:]], dim=1)  # [y, x]: nothing to copy from


def second_copy_logprob(logits):
    """Mean log-probability of the correct next token over the second copy."""
    logp = torch.log_softmax(logits[:, L:-1], dim=-1)
    return logp.gather(-1, clean[:, L + 1 :, None]).mean()


# %%
# Patch each head's output, clean into corrupted ("denoise"): a head that restores the
# metric carries the induction mechanism.
exp = wb.activation_patching(
    model, clean, corrupted, second_copy_logprob, site="attn.head_out", by="head", normalize=True
)
grid = np.asarray(exp.values[0]).reshape(exp.meta["grid_shape"])
print("clean / corrupted metric:", exp.meta["clean_metric"], exp.meta["corrupted_metric"])

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, (title, m) in zip(
    axes,
    [
        ("prefix-matching score", np.asarray(scores.prefix_matching)),
        ("patching: metric restored", grid),
    ],
    strict=True,
):
    im = ax.imshow(m, cmap="viridis", aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
fig.tight_layout()
