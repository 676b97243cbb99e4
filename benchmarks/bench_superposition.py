"""Toy Models of Superposition (Elhage et al. 2022) reproduced, and SAEs recovering toy features.

1. The paper's opening example, 5 features in 2 dimensions with importance ``0.9**i``, trained
   here with ``cache=False`` (first-run times, one torch thread) for three seeds at the three
   sparsities of its figure: 0 (the two most important features orthogonal, the rest dropped),
   0.8 (two antipodal pairs, the least important feature dropped), 0.9 (a pentagon). Per regime:
   the configuration found for each seed, the feature norms, the adjacent angles round the
   plane, Elhage's feature dimensionality ``D_i``, the loss (at S 0 against its closed form
   ``(0.9^2 + 0.9^3 + 0.9^4) / 12``) and the training time.
2. A sparsity sweep (seed 0): the configuration and the number of represented features from
   dense to very sparse inputs, the phase change of the paper's figure.
3. An SAE trained on the hidden layer of a toy with 40 equally important features in 10
   dimensions (sparsity 0.95) recovers the toy's feature directions: mean over true features of
   the largest cosine with a decoder row (target > 0.9), against the same SAE untrained and
   against a random rotation of the true features; TopK, ReLU + L1, BatchTopK and JumpReLU
   (with threshold 0.001 and bandwidth 0.001, far below these unit-scale activations, and with
   a threshold and bandwidth at this scale), each trained
   by a bare Adam loop on ``SAE.training_loss`` (lr 1e-2, decoder rows unit-norm), and TopK and
   ReLU + L1 by ``whybox.sae.train`` when it is importable.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

SEEDS = (0, 1, 2)
REGIMES = (0.0, 0.8, 0.9)
SWEEP = (0.0, 0.3, 0.5, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
CLOSED_FORM_DENSE = (0.9**2 + 0.9**3 + 0.9**4) / 12
TOY_SAE = {"n_features": 40, "d_hidden": 10, "sparsity": 0.95}
TOY_SAE_RECIPE = {"importance": 1.0, "n_instances": 1, "steps": 1500, "batch_size": 512}
SAE_STEPS, SAE_BATCH = 600, 256


def _r(a: Any, nd: int = 3) -> list[float]:
    return [round(float(v), nd) for v in np.asarray(a).ravel()]


def regime_figures() -> dict[str, Any]:
    from whybox.zoo.superposition import toy_superposition_model

    out: dict[str, Any] = {}
    for s in REGIMES:
        runs = []
        for seed in SEEDS:
            t0 = time.process_time()
            m = toy_superposition_model(sparsity=s, seed=seed, cache=False)
            cpu = time.process_time() - t0
            g = m.geometry()
            runs.append(
                {
                    "seed": seed,
                    "kind": g.kind,
                    "represented": list(g.represented),
                    "pairs": [list(p) for p in g.pairs],
                    "norms": _r(m.norms()),
                    "adjacent_angles": _r(g.adjacent_angles, 1),
                    "dimensionality": _r(m.dimensionality()),
                    "loss": float(m.loss),
                    "instance_losses": _r(m.losses, 4),
                    "train_cpu_s": cpu,
                }
            )
        out[f"S={s}"] = runs
    return out


def sweep_figures() -> list[dict[str, Any]]:
    from whybox.zoo.superposition import dimensions_per_feature, toy_superposition_model

    rows = []
    for s in SWEEP:
        m = toy_superposition_model(sparsity=s, seed=0, cache=False)
        g = m.geometry()
        rows.append(
            {
                "sparsity": s,
                "kind": g.kind,
                "n_represented": len(g.represented),
                "dimensions_per_feature": dimensions_per_feature(m.W),
                "loss": float(m.loss),
            }
        )
    return rows


def _mean_max_cosine(truth: np.ndarray, decoder: np.ndarray) -> tuple[float, float]:
    t = truth / np.linalg.norm(truth, axis=0)
    d = decoder / np.linalg.norm(decoder, axis=1, keepdims=True)
    best = (d @ t).max(axis=0)
    return float(best.mean()), float(best.min())


def _bare_loop(x: Any, cfg: Any) -> Any:
    import torch

    from whybox.sae.models import SAE, TrainState

    sae = SAE.create(cfg, random_state=0)
    sae.init_b_dec_geometric_median_(x[:2000])
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    state = TrainState(total_steps=SAE_STEPS, tokens_since_fired=torch.zeros(cfg.d_sae).long())
    for step in range(SAE_STEPS):
        batch = x[step * SAE_BATCH : (step + 1) * SAE_BATCH]
        state.step = step
        parts = sae.training_loss(batch, step_state=state)
        opt.zero_grad()
        parts.loss.backward()
        sae.remove_gradient_parallel_to_decoder_()
        opt.step()
        sae.set_decoder_norm_to_unit_norm_()
        state.tokens_since_fired += len(batch)
        state.tokens_since_fired[parts.fired] = 0
    return sae


def recovery_figures() -> dict[str, Any]:
    import torch

    from whybox.sae.models import SAE, SAEConfig
    from whybox.zoo.superposition import toy_superposition_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        toy = toy_superposition_model(**TOY_SAE, **TOY_SAE_RECIPE, cache=False)
        x = torch.from_numpy(toy.hidden(toy.sample(SAE_STEPS * SAE_BATCH, random_state=1)))
        held_out = toy.hidden(toy.sample(8192, random_state=2)).astype(np.float64)
        Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(toy.d_hidden,) * 2))
        n, m = toy.n_features, toy.d_hidden
        cfgs = {
            "topk (k 3)": SAEConfig(d_in=m, d_sae=2 * n, architecture="topk", k=3),
            "standard (L1 0.5)": SAEConfig(
                d_in=m, d_sae=2 * n, architecture="standard", l1_coefficient=0.5
            ),
            "batchtopk (k 2)": SAEConfig(d_in=m, d_sae=2 * n, architecture="batchtopk", k=2),
            "jumprelu (threshold 0.001, bandwidth 0.001, L0 coef 1)": SAEConfig(
                d_in=m,
                d_sae=2 * n,
                architecture="jumprelu",
                jumprelu_init_threshold=0.001,
                jumprelu_bandwidth=0.001,
            ),
            "jumprelu (threshold 0.2, bandwidth 0.05, L0 coef 0.1)": SAEConfig(
                d_in=m,
                d_sae=2 * n,
                architecture="jumprelu",
                l0_coefficient=0.1,
                jumprelu_init_threshold=0.2,
                jumprelu_bandwidth=0.05,
            ),
        }
        out: dict[str, Any] = {
            "toy": f"{n} features in {m} dims, sparsity {TOY_SAE['sparsity']}, importance 1",
            "toy_min_norm": float(toy.norms().min()),
            "toy_dimensionality_range": _r(
                [toy.dimensionality().min(), toy.dimensionality().max()]
            ),
            "sae_rows": SAE_STEPS * SAE_BATCH,
            "results": {},
        }
        trainers = [(f"{name}, bare loop", cfg, None) for name, cfg in cfgs.items()]
        try:
            from whybox.sae.training import train
        except ImportError:  # whybox.sae.training not there yet
            train = None
        if train is not None:
            trainers += [
                ("topk (k 3), wb.sae.train", cfgs["topk (k 3)"], {"k": 3}),
                ("standard (L1 0.5), wb.sae.train", cfgs["standard (L1 0.5)"], {}),
            ]
        for name, cfg, options in trainers:
            untrained = _mean_max_cosine(toy.W, SAE.create(cfg).W_dec.detach().double().numpy())
            t0 = time.process_time()
            if options is None:
                sae = _bare_loop(x, cfg)
            else:
                sae = train(
                    activations=x.numpy(),
                    architecture=cfg.architecture,
                    width=cfg.d_sae,
                    batch_size=SAE_BATCH,
                    lr=1e-2,
                    l1_coefficient=cfg.l1_coefficient if cfg.architecture == "standard" else None,
                    progress=False,
                    random_state=0,
                    **options,
                )
            cpu = time.process_time() - t0
            dec = sae.W_dec.detach().double().numpy()
            with torch.no_grad():
                h = torch.from_numpy(held_out).float()
                x_hat = sae(h).double().numpy()
                l0 = float((sae.encode(h) != 0).float().sum(-1).mean())
            fvu = float(
                ((x_hat - held_out) ** 2).sum() / ((held_out - held_out.mean(0)) ** 2).sum()
            )
            mean, worst = _mean_max_cosine(toy.W, dec)
            out["results"][name] = {
                "mean_max_cos": mean,
                "worst_max_cos": worst,
                "untrained_mean_max_cos": untrained[0],
                "rotated_truth_mean_max_cos": _mean_max_cosine(Q @ toy.W, dec)[0],
                "fvu": fvu,
                "l0": l0,
                "train_cpu_s": cpu,
            }
    finally:
        torch.set_num_threads(threads)
    return out


def run() -> dict[str, Any]:
    from benchmarks.common import machine

    t0 = time.perf_counter()
    res = {
        "machine": machine(),
        "regimes": regime_figures(),
        "sweep": sweep_figures(),
        "recovery": recovery_figures(),
    }
    res["wall_s"] = time.perf_counter() - t0
    return res


def _list(v: list) -> str:
    return "(" + ", ".join(f"{x:g}" for x in v) + ")"


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    lines = [
        "### Toy Models of Superposition (Elhage et al. 2022) and SAE feature recovery",
        "",
        f"Machine: {res['machine']}; one torch thread; every model trained from scratch "
        f"(cache=False); whole benchmark {res['wall_s']:.0f} s.",
        "",
        "5 features in 2 dimensions, importance 0.9^i, 8 instances per model (lowest loss kept), "
        "3000 Adam steps of 1024 rows. Expected (the paper's figure): S 0 orthogonal top two, "
        "S 0.8 antipodal pairs, S 0.9 pentagon (adjacent 72 deg, D = 2/5).",
        "",
        "| S | seed | configuration | norms | adjacent angles (deg) | dimensionality D_i "
        "| loss | train CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, runs in res["regimes"].items():
        for r in runs:
            lines.append(
                f"| {key[2:]} | {r['seed']} | {r['kind']} {tuple(r['represented'])}"
                + (f" pairs {r['pairs']}" if r["pairs"] else "")
                + f" | {_list(r['norms'])} | {_list(r['adjacent_angles'])} | "
                f"{_list(r['dimensionality'])} | {r['loss']:.5f} | {r['train_cpu_s']:.1f} |"
            )
    dense = [r["loss"] for r in res["regimes"]["S=0.0"]]
    lines += [
        "",
        f"S 0 loss against the closed form {CLOSED_FORM_DENSE:.5f} "
        f"(kept features exact, dropped ones predicted by their mean): "
        f"{min(dense):.5f}-{max(dense):.5f} "
        f"(max relative gap {max(abs(d / CLOSED_FORM_DENSE - 1) for d in dense):.2%}).",
        "",
        "Sparsity sweep (seed 0):",
        "",
        "| S | configuration | features represented | dims per feature (m / ||W||_F^2) | loss |",
        "|---|---|---|---|---|",
    ]
    for r in res["sweep"]:
        lines.append(
            f"| {r['sparsity']} | {r['kind']} | {r['n_represented']} | "
            f"{r['dimensions_per_feature']:.3f} | {r['loss']:.5f} |"
        )
    rec = res["recovery"]
    lines += [
        "",
        f"SAE on a toy's hidden layer: {rec['toy']} (min feature norm {rec['toy_min_norm']:.3f}, "
        f"D_i in {_list(rec['toy_dimensionality_range'])}, m / n = "
        f"{TOY_SAE['d_hidden'] / TOY_SAE['n_features']:g}); 80 latents, {SAE_STEPS} Adam steps "
        f"of {SAE_BATCH} rows ({rec['sae_rows']} rows), FVU and L0 on 8192 held-out rows. "
        "Target: mean max cosine > 0.9.",
        "",
        "| SAE | mean max cos | worst feature | untrained | vs rotated truth | FVU | L0 "
        "| train CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rec["results"].items():
        lines.append(
            f"| {name} | **{r['mean_max_cos']:.4f}** | {r['worst_max_cos']:.4f} | "
            f"{r['untrained_mean_max_cos']:.4f} | {r['rotated_truth_mean_max_cos']:.4f} | "
            f"{r['fvu']:.3f} | {r['l0']:.2f} | {r['train_cpu_s']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(markdown(run()))
