"""
Logit lens, tuned lens and a steering vector on a tiny GPT-2
============================================================

:func:`whybox.zoo.tiny_lm` is a 4-layer GPT-2 (d_model 128, a 2048-token vocabulary) trained
here on Python's own documentation (the pydoc topics) and cached after its first training. We
read what it would predict after each layer with the **logit lens** (nostalgebraist 2020) and a
**tuned lens** (Belrose et al. 2023), then build a **steering vector** from contrastive prompts
(activation addition, Turner et al. 2023; CAA, Rimsky et al. 2024) and watch it change the
next-token distribution and the generated text.
"""

# %%
import matplotlib.pyplot as plt
import torch

import whybox as wb

model, tok = wb.zoo.tiny_lm()
text = "The break statement terminates the nearest enclosing for or while loop."
ids = tok(text, return_tensors="pt")["input_ids"]
tokens = [tok.decode([int(i)]) for i in ids[0]]

# %%
# The logit lens
# --------------
# Each layer's residual stream goes through the model's own final norm and unembedding. The
# heat map shows, per layer and position, the probability the lens gives to the token that
# actually comes next in the sentence. The last row ("L3") is the model's own prediction.
next_ids = torch.cat([ids[:, 1:], torch.full((1, 1), -1)], dim=1)  # -1: no next token
lens = wb.logit_lens(model, ids, tokenizer=tok, target=next_ids)
prob = lens.prob()[:, 0, :-1].detach().numpy()  # (layers, positions)

fig, ax = plt.subplots(figsize=(10, 2.8))
im = ax.imshow(prob, cmap="Blues", aspect="auto", vmin=0, vmax=1)
ax.set_yticks(range(len(lens.labels)))
ax.set_yticklabels(lens.labels)
ax.set_xticks(range(prob.shape[1]))
ax.set_xticklabels([repr(t)[1:-1] for t in tokens[:-1]], rotation=45, ha="right", fontsize=8)
ax.set_xlabel("position (the token read; the target is the one after it)")
ax.set_title("logit lens: probability of the true next token")
fig.colorbar(im, ax=ax)
fig.tight_layout()

# %%
# The top token of each layer at a few positions: the prediction sharpens with depth.
top = lens.top_tokens(1).tokens[:, 0, :, 0]
for pos in (1, 5, 9):
    row = "  ".join(f"{lab}: {t!r}" for lab, t in zip(lens.labels, top[:, pos], strict=True))
    print(f"after {tokens[pos]!r:12} {row}")


# %%
# A tuned lens
# ------------
# The logit lens assumes every layer already speaks the unembedding's language; early layers
# do not. The tuned lens learns one affine translator per layer, trained to minimise the KL
# divergence to the model's final distribution (a short fit here: 60 steps on a few pages).
# The held-out KL per layer is the lens's error: lower is more faithful.
def paragraphs(split, n_docs):
    """Paragraphs of 80-300 characters from the model's own corpus (under 128 tokens)."""
    docs = wb.zoo.tiny_lm_corpus(split)[:n_docs]
    return [p for d in docs for p in d.split("\n\n") if 80 < len(p) < 300]


train, held_out = paragraphs("train", 6), paragraphs("test", 3)
tuned = wb.TunedLens(n_steps=60, max_tokens=4096, max_length=64, random_state=0)
tuned.fit(model, train, tokenizer=tok)
kl = tuned.evaluate(model, held_out[:24], tokenizer=tok)
print(kl.round(3))

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(kl.index, kl["logit_lens_kl"], "o-", label="logit lens")
ax.plot(kl.index, kl["tuned_lens_kl"], "s-", label="tuned lens")
ax.set_ylabel("KL to the final layer (nats)")
ax.set_xlabel("layer read")
ax.legend()
fig.tight_layout()

# %%
# A steering vector
# -----------------
# The mean difference of layer-1 activations between sentences about exceptions and
# sentences about loops (four pairs) is a direction for "exceptions, not loops". Adding
# ``coef`` times it to the residual stream at every position shifts the next-token
# distribution; ``SteeringVector.effect`` measures the change in the
# log-probability of " exception" after four prompts that mention neither topic.
exceptions = [
    "An exception is raised",
    "The try statement handles an exception",
    "If an error occurs, an exception is raised",
    "The except clause handles the exception",
]
loops = [
    "A for loop iterates",
    "The for statement iterates over a sequence",
    "The while loop is repeated",
    "The loop body is executed",
]
vec = wb.SteeringVector.from_pairs(
    model, exceptions, loops, layer=1, tokenizer=tok, position="mean"
)
prompts = ["The return statement", "A function definition", "The import statement", "A class"]
coefs = [-4.0, -2.0, 0.0, 2.0, 4.0, 8.0]
eff = vec.effect(model, prompts, target_token=" exception", tokenizer=tok, coefs=coefs)
frame = eff.to_frame()
print(frame.round(2))

fig, ax = plt.subplots(figsize=(5, 3))
ax.errorbar(frame.index, frame["change"], yerr=frame["change_sem"], marker="o", capsize=3)
ax.axhline(0, color="grey", lw=0.8)
ax.set_xlabel("steering coefficient")
ax.set_ylabel("change in log p(' exception')")
ax.set_title("steering towards 'exception' (layer 1)")
fig.tight_layout()

# %%
# Before and after: the same greedy decoding (with a repetition penalty, as a tiny model
# otherwise loops on newlines), without steering and with ``coef=4``. Unsteered, the model
# names the ``except`` statement, a heading it has seen often; steered, it writes about *the
# exception* itself. A model this small loses fluency as the coefficient grows, so read the
# text next to the measured effect above rather than alone.
gen = dict(max_new_tokens=16, no_repeat_ngram_size=3, repetition_penalty=1.3)
for c in (0.0, 4.0):
    outs = vec.generate(model, tok, prompts, coef=c, **gen)
    n = sum(" exception" in o for o in outs)
    print(f"--- coef {c}: ' exception' in {n} of {len(outs)} continuations")
    for o in outs:
        print(" ", repr(o))
