"""
A CNN on digits: Integrated Gradients, Grad-CAM and image SHAP
==============================================================

:func:`whybox.zoo.digits_cnn` is a small convolutional network trained on scikit-learn's 8x8
handwritten digits (seconds on a CPU, then cached). We explain its predicted class for a few
test images with three families of methods and draw them side by side.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import whybox as wb

torch.manual_seed(0)
model, data = wb.zoo.digits_cnn(random_state=0)
print(f"test accuracy {data.test_accuracy:.3f}")
x = data.X_test[:4]
pred = model(x).argmax(1)

# %%
# Integrated Gradients from a black image. Its completeness gap f(x) - f(baseline) - sum of
# attributions says whether the path integral has converged; ``tolerance=`` refines each
# image's steps until the gap is that small.
ig = wb.IntegratedGradients(model).explain(x, target=pred, tolerance=1e-3)
print("IG completeness gap per image:", np.round(ig.completeness_gap(), 4))

# %%
# Grad-CAM of the last convolution, by its module path.
conv = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][-1]
cam = wb.GradCam(model, conv).explain(x, target=pred)

# %%
# Image SHAP: 16 square segments are the players of a Shapley game, a removed segment is set
# to 0 (the background of the digits). KernelSHAP estimates the values from 512 coalitions
# (``wb.ExactShap`` would enumerate all 65,536) and reports their standard errors.
masker = wb.ImageMasker(segments="grid", n_segments=16, fill="baseline", value=0.0)
shap_img = wb.KernelShap(model, masker, random_state=0).explain(x, target=pred, budget=512)
print("largest standard error:", float(np.max(shap_img.std)))


# %%
# Side by side: red pushes towards the predicted digit, blue away from it.
def heat(exp, i):
    v = np.asarray(exp.values[i], dtype=float)
    return v.reshape(v.shape[-2:]) if v.ndim > 2 else v.reshape(8, 8)


fig, axes = plt.subplots(len(x), 4, figsize=(8, 2 * len(x)))
for i in range(len(x)):
    axes[i, 0].imshow(data.images[i], cmap="gray_r")
    axes[i, 0].set_title(f"predicted {int(pred[i])}")
    for j, (name, e) in enumerate([("IG", ig), ("Grad-CAM", cam), ("image SHAP", shap_img)], 1):
        h = heat(e, i)
        lim = np.abs(h).max() or 1.0
        axes[i, j].imshow(h, cmap="bwr", vmin=-lim, vmax=lim)
        axes[i, j].set_title(name)
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()
