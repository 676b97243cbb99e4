"""
Token attribution for a sentiment classifier on MiniLM
======================================================

:func:`whybox.zoo.sentiment_classifier` is all-MiniLM-L6-v2 with a sentiment head trained here
on the project's own sentences. We ask which words made it call a sentence positive, with
Integrated Gradients (through the embeddings) and TokenSHAP (Shapley values of words, the model
treated as a black box), and compare the two.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import whybox as wb

model, tok = wb.zoo.sentiment_classifier()
texts = ["The movie was great, but the ending felt rushed.", "A dull plot and wooden acting."]

ig = wb.explain(model, texts, tokenizer=tok, target=1, method="integrated_gradients")
ts = wb.explain(model, texts, tokenizer=tok, target=1, method="tokenshap", random_state=0)
print("explained:", ig.params.get("output", ig.output_names))


# %%
# Each row's players are its words; the values explain the positive class's output.
# Text explanations are ragged (one length per row): read them row by row.
def words(exp, i):
    return exp.row_feature_names(i), np.asarray(exp.row_values(i), dtype=float)


fig, axes = plt.subplots(len(texts), 2, figsize=(10, 2.6 * len(texts)))
for i in range(len(texts)):
    for j, (name, e) in enumerate([("Integrated Gradients", ig), ("TokenSHAP", ts)]):
        names, vals = words(e, i)
        ax = axes[i, j]
        ax.bar(range(len(vals)), vals, color=np.where(vals > 0, "tab:red", "tab:blue"))
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{name}: {texts[i][:30]}...", fontsize=9)
fig.tight_layout()
