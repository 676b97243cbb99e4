"""
RAG source attribution: which retrieved document the answer came from
=====================================================================

A retrieval-augmented prompt holds a query and a few retrieved documents; which of them did the
answer use? :class:`whybox.RagAttribution` makes the documents the players of a game whose
worth is the log-probability of the answer given the query and the documents kept, and reads
off their Shapley values. The language model is :func:`whybox.zoo.tiny_lm`, a small GPT-2
trained on Python's documentation (cached after its first training).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import whybox as wb

model, tok = wb.zoo.tiny_lm()
query = "What does the break statement do?"
documents = [
    "The pass statement is a null operation: when it is executed, nothing happens.",
    "The break statement terminates the nearest enclosing for or while loop.",
    "The import statement finds a module, loads and initializes it.",
    "The return statement leaves the current function call with a value.",
]
answer = " It terminates the nearest enclosing loop."

rag = wb.RagAttribution(model, tokenizer=tok, random_state=0)
exact = rag.explain(query, documents, answer, method="exact")  # all 2**4 contexts
loo = rag.explain(query, documents, answer, method="leave_one_out")  # n + 1 contexts

# %%
# The document about ``break`` carries the answer; leave-one-out agrees here, but it misses
# documents that only matter together (redundant sources each get ~0).
names = [f"doc {i}: {d[:28]}..." for i, d in enumerate(documents)]
fig, ax = plt.subplots(figsize=(8, 3))
width = 0.4
pos = np.arange(len(documents))
ax.barh(pos - width / 2, np.asarray(exact.row_values(0)), width, label="Shapley (exact)")
ax.barh(pos + width / 2, np.asarray(loo.row_values(0)), width, label="leave-one-out")
ax.set_yticks(pos)
ax.set_yticklabels(names, fontsize=8)
ax.invert_yaxis()
ax.set_xlabel("contribution to log p(answer)")
ax.legend()
fig.tight_layout()
print("completeness gap of the exact values:", exact.completeness_gap())
