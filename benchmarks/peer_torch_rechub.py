"""torch-rechub's MMoE on the training-throughput workload (run in an environment with torch-rechub).

    python -m venv peers && peers/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    peers/bin/pip install torch-rechub==0.9.0
    peers/bin/python benchmarks/peer_torch_rechub.py --rows 500000 --batch-size 512

``train_throughput.py --torch-python peers/bin/python`` runs this for each batch
size and adds its rows to the table. Prints one JSON line: examples/second (from
step 6 to the end of one epoch), epoch seconds and held-out AUC per task. The model
is ``torch_rechub.models.multi_task.MMOE`` with the workload's features (embedding
16, 13 standardized dense features), 4 experts [256, 128], towers [64], Adam 1e-3,
summed binary cross-entropy; batches are slices of in-memory tensors, so input
costs nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch_rechub.basic.features import DenseFeature, SparseFeature
from torch_rechub.models.multi_task import MMOE

from workload import NUM_NUMERIC, TASKS, VOCAB_SIZES, generate, roc_auc, standardized_numerics


def tensors(features, numerics):
    x = {f"c{i}": torch.from_numpy(features[f"c{i}"]) for i in range(len(VOCAB_SIZES))}
    x.update({f"n{i}": torch.from_numpy(numerics[:, i].copy()) for i in range(NUM_NUMERIC)})
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    features, labels, _ = generate(int(args.rows * 1.25))
    train = {k: v[: args.rows] for k, v in features.items()}
    test = {k: v[args.rows:] for k, v in features.items()}
    x_train, x_test = tensors(train, standardized_numerics(train, train)), tensors(test, standardized_numerics(train, test))
    y_train = torch.from_numpy(np.stack([labels[t][: args.rows] for t in TASKS], axis=1))
    columns = [SparseFeature(f"c{i}", int(size), embed_dim=16) for i, size in enumerate(VOCAB_SIZES)]
    columns += [DenseFeature(f"n{i}") for i in range(NUM_NUMERIC)]
    model = MMOE(columns, ["classification", "classification"], n_expert=4,
                 expert_params={"dims": [256, 128]}, tower_params_list=[{"dims": [64]}, {"dims": [64]}])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCELoss()
    model.train()
    skip, started, timed_from = 5, time.perf_counter(), None
    for step, start in enumerate(range(0, args.rows, args.batch_size), start=1):
        batch = {k: v[start:start + args.batch_size] for k, v in x_train.items()}
        y = y_train[start:start + args.batch_size]
        predictions = model(batch)
        loss = sum(loss_fn(predictions[:, i], y[:, i]) for i in range(len(TASKS)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == skip:
            timed_from = time.perf_counter()
    ended = time.perf_counter()
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model({k: v[s:s + 8192] for k, v in x_test.items()})
                            for s in range(0, len(x_test["c0"]), 8192)]).numpy()
    aucs = {f"{t}/auc": roc_auc(labels[t][args.rows:], scores[:, i]) for i, t in enumerate(TASKS)}
    print(json.dumps({"examples_per_s": (args.rows - skip * args.batch_size) / (ended - timed_from),
                      "epoch_s": ended - started, **aucs}))


if __name__ == "__main__":
    main()
