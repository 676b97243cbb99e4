"""IntegratedGradients vs Captum's on the zoo digits CNN; one process, CPU, 2 threads.

Task: ``wb.zoo.digits_cnn(random_state=0)``, its first 256 test images, the predicted class of
each, baseline 0, 50 Gauss-Legendre steps (all 256 x 50 path points in one batch in both, as
Captum's default ``internal_batch_size=None`` does).

Figures, each over ``repeats`` interleaved runs (Captum, whybox, floor), reported as the best
time and the spread of the per-run ratios:

- ``ratio``: whybox time / Captum time at equal steps and rule (target <= 1.05).
- ``whybox_over_floor``: whybox time / the bare forward + backward pass of the same 12 800
  path points (built beforehand, in the images' memory layout), the floor any IG
  implementation pays (target <= 1.1).
- adaptive IG: ``tolerance`` = Captum's mean relative completeness gap at 50 GL steps; the
  gradient evaluations whybox's adaptive mode uses to reach a mean gap at most that, over
  256 x 50 (target <= 0.5).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import best_of


def run(n_images: int = 256, steps: int = 50, repeats: int = 5) -> dict[str, object]:
    import torch
    from captum.attr import IntegratedGradients as CaptumIG

    import whybox as wb
    from whybox.gradients import quadrature

    torch.set_num_threads(2)
    model, data = wb.zoo.digits_cnn(random_state=0)
    x = data.X_test[:n_images].clone()
    with torch.no_grad():
        target = model(x).argmax(1)
        f_x = model(x).gather(1, target[:, None])[:, 0].double()
        f_b = model(torch.zeros_like(x)).gather(1, target[:, None])[:, 0].double()
    delta = (f_x - f_b).numpy()

    def captum_run() -> np.ndarray:
        return (
            CaptumIG(model)
            .attribute(x.clone(), target=target, n_steps=steps, method="gausslegendre")
            .detach()
            .numpy()
        )

    ig = wb.IntegratedGradients(model)

    def wb_run() -> np.ndarray:
        return ig.explain(x, target=target, steps=steps, method="gausslegendre").values

    alphas, _ = quadrature("gausslegendre", steps)
    # step-major, in the memory layout of the images (as slicing them would give): the
    # layout decides the convolution kernels, so the floor takes the faster one
    points = torch.cat([float(a) * x for a in alphas])
    idx = target.repeat(steps)[:, None]

    def floor_run() -> None:
        p = points.detach().requires_grad_(True)
        out = model(p).gather(1, idx).sum()
        torch.autograd.grad(out, p)

    captum_run(), wb_run(), floor_run()  # warm-up
    t_captum, t_wb, t_floor = [], [], []
    for _ in range(repeats):
        t, ref = best_of(captum_run, repeats=1)
        t_captum.append(t)
        t, ours = best_of(wb_run, repeats=1)
        t_wb.append(t)
        t, _ = best_of(floor_run, repeats=1)
        t_floor.append(t)
    max_diff = float(np.abs(ours - ref).max() / np.abs(ref).max())
    captum_gap = float(np.mean(np.abs(delta - ref.reshape(n_images, -1).sum(1)) / np.abs(delta)))

    t0 = time.perf_counter()
    adaptive = ig.explain(x, target=target, tolerance=captum_gap)
    t_adaptive = time.perf_counter() - t0
    evals = int(np.sum(adaptive.meta["steps"]))
    ratios = [w / c for w, c in zip(t_wb, t_captum, strict=True)]
    floors = [w / f for w, f in zip(t_wb, t_floor, strict=True)]
    return {
        "task": (
            f"IntegratedGradients, digits CNN, {n_images} images, {steps} Gauss-Legendre "
            "steps, baseline 0, CPU, 2 threads"
        ),
        "whybox_s": min(t_wb),
        "peer": "captum.attr.IntegratedGradients",
        "peer_s": min(t_captum),
        "ratio": min(t_wb) / min(t_captum),
        "ratio_per_run": [round(r, 3) for r in ratios],
        "floor_s": min(t_floor),
        "whybox_over_floor": min(t_wb) / min(t_floor),
        "whybox_over_floor_per_run": [round(r, 3) for r in floors],
        "max_rel_diff_vs_captum": max_diff,
        "captum_mean_rel_completeness_gap": captum_gap,
        "adaptive_tolerance": captum_gap,
        "adaptive_mean_rel_completeness_gap": adaptive.meta["mean_relative_completeness_gap"],
        "adaptive_gradient_evals": evals,
        "fixed_gradient_evals": n_images * steps,
        "adaptive_evals_over_fixed": evals / (n_images * steps),
        "adaptive_mean_steps": adaptive.meta["mean_steps"],
        "adaptive_max_steps": int(np.max(adaptive.meta["steps"])),
        "adaptive_s": t_adaptive,
    }


if __name__ == "__main__":
    print(run())
