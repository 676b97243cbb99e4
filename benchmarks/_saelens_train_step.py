"""SAELens' own training loop on stored activations (run inside .venv-saelens, not .venv).

Called by ``bench_sae_training.py`` in a subprocess of ``.venv-saelens/bin/python``; it never
imports whybox. It builds SAELens' ``<Arch>TrainingSAE`` and runs ``SAETrainer.fit`` (the
library's loop: ``training_forward_pass``, dead-latent bookkeeping, backward, gradient
clipping, Adam, scheduler) on the batches of ``--train`` (an (n, d_in) float32 ``.npy``,
already shuffled) in order, wrapping around. The data provider stamps the time of every
batch request, so consecutive stamps are the wall time of one training step. Afterwards the
trained SAE reconstructs ``--eval`` in batches of ``--batch`` (as trained: BatchTopK keeps the
batch's top ``k * batch``) and the FVU, L0 and step times go to ``--out`` as JSON.

usage: python _saelens_train_step.py --train a.npy --eval b.npy --arch topk --width 3072
       --k 32 --batch 4096 --tokens 1000000 --lr 3e-4 --threads 2 --seed 0 --out r.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _build(args, d_in):
    import sae_lens as sl

    common = {"d_in": d_in, "d_sae": args.width, "dtype": "float32", "device": "cpu"}
    if args.arch == "topk":
        return sl.TopKTrainingSAE(sl.TopKTrainingSAEConfig(k=args.k, **common))
    if args.arch == "batchtopk":
        return sl.BatchTopKTrainingSAE(sl.BatchTopKTrainingSAEConfig(k=args.k, **common))
    if args.arch == "jumprelu":
        cfg = sl.JumpReLUTrainingSAEConfig(
            jumprelu_init_threshold=args.init_threshold,
            jumprelu_bandwidth=args.bandwidth,
            l0_coefficient=args.l0_coefficient,
            **common,
        )
        return sl.JumpReLUTrainingSAE(cfg)
    raise SystemExit(f"unknown architecture {args.arch}")


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--train", "--eval", "--arch", "--out"):
        p.add_argument(name, required=True)
    p.add_argument("--width", type=int, default=3072)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-threshold", type=float, default=0.01)
    p.add_argument("--bandwidth", type=float, default=0.05)
    p.add_argument("--l0-coefficient", type=float, default=1.0)
    p.add_argument("--target-l0", type=float, default=0.0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from sae_lens import SAETrainer
    from sae_lens.config import SAETrainerConfig

    train = torch.from_numpy(np.load(args.train, mmap_mode="r")[:].astype(np.float32))
    evals = torch.from_numpy(np.load(args.eval).astype(np.float32))
    sae = _build(args, train.shape[1])
    if args.arch == "jumprelu" and args.target_l0 > 0:
        # start at the target L0: one threshold, the matching quantile of the first batch
        with torch.no_grad():
            _, pre = sae.encode_with_hidden_pre(train[: args.batch])
            q = 1.0 - args.target_l0 / args.width
            sae.threshold.data.fill_(float(torch.quantile(pre.flatten()[::7], q)))
    stamps: list[float] = []

    def provider():
        n, b, start = train.shape[0], args.batch, 0
        while True:
            stamps.append(time.perf_counter())
            if start + b > n:
                start = 0
            yield train[start : start + b]
            start += b

    cfg = SAETrainerConfig(
        total_training_samples=args.tokens,
        train_batch_size_samples=args.batch,
        lr=args.lr,
        lr_end=args.lr / 10,  # what SAELens' runner config sets; the constant schedule ignores it
        device="cpu",
        n_batches_for_norm_estimate=1,
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=provider())
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    stamps.append(time.perf_counter())

    sae.eval()
    se, var, l0, rows = 0.0, 0.0, 0.0, 0
    mean = evals.double().mean(0)
    with torch.no_grad():
        for s in range(0, evals.shape[0] - args.batch + 1, args.batch):
            x = evals[s : s + args.batch]
            f = sae.encode(x)
            x_hat = sae.decode(f)
            se += float((x_hat.double() - x.double()).pow(2).sum())
            var += float((x.double() - mean).pow(2).sum())
            l0 += float((f != 0).sum())
            rows += x.shape[0]
    steps = np.diff(np.asarray(stamps)).tolist()
    with open(args.out, "w") as fh:
        json.dump(
            {
                "library": "sae-lens " + __import__("sae_lens").__version__,
                "wall_s": wall,
                "step_s": steps,
                "fvu": se / var,
                "l0": l0 / max(rows, 1),
                "eval_rows": rows,
            },
            fh,
        )


if __name__ == "__main__":
    main()
