"""Does an id-heavy multi-task model keep its quality over epochs? tfmtl's default MMoE against a plain tf_keras MMoE.

Workload (numpy, :func:`generate`): Zipf-distributed user and item ids (``--users`` and
``--items``; exponent 1.1, so a few ids take most rows and most ids are seen a handful of
times), a category per item, a device and an hour per row. Two binary tasks drawn from a
known logistic model with user and item biases, an id-by-id interaction (the dot product
of hidden user and item vectors) and context effects; conversion shares part of click's
signal. The true probabilities are kept, so the oracle AUC (scoring the test rows by them)
is the ceiling. ``--rows`` training rows (500,000) and ``--rows // 5`` test rows from the
same distribution.

Models, both MMoE with 4 experts [256, 128], one gate per task, towers [64], embeddings of
16 for every id (vocabularies: the training ids), Adam at 1e-3, batch 512, ``--epochs``
epochs, test AUC per task after every epoch:

* ``plain tf_keras``: ``keras.layers.Embedding`` + ``Dense`` experts, gates and towers, no
  regularisation (the model every library's MMoE builds);
* ``tfmtl default``: ``tfmtl.models.mmoe(schema, tasks)`` compiled with ``model.compile()``,
  every setting at its default (:class:`tfmtl.layers.Regularization`, ``Categorical``);
* ``--variants`` adds tfmtl models with settings changed, e.g. ``embedding_l2=0,min_count=1``
  (keys: ``embedding_l2``, ``dropout``, ``kernel_l2`` of :class:`tfmtl.layers.Regularization`,
  and ``min_count`` of every ``Categorical``).

Reported: per model and task the AUC at every epoch, the best epoch, epoch-last minus best,
and the share of the gap between the plain model's best and the oracle that the model's best
closes. Mean over ``--seeds``.

    python benchmarks/generalisation.py                       # 3 seeds, 500,000 rows, 5 epochs
    python benchmarks/generalisation.py --rows 100000 --seeds 0 --variants "embedding_l2=0,min_count=1"
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras, tf  # noqa: E402

tf.get_logger().setLevel("ERROR")

TASKS = ("click", "conversion")
IDS = ("user_id", "item_id", "item_category", "device", "hour")
EMBEDDING_DIM, EXPERTS, EXPERT_UNITS, TOWER_UNITS, BATCH = 16, 4, (256, 128), (64,), 512


def zipf_ids(rng: np.random.Generator, rows: int, size: int, exponent: float = 1.1) -> np.ndarray:
    """``rows`` ids in ``0..size-1`` whose frequencies fall as ``rank ** -exponent``, ranks shuffled over ids."""
    weights = np.arange(1, size + 1, dtype=np.float64) ** -exponent
    ranks = rng.choice(size, size=rows, p=weights / weights.sum())
    return rng.permutation(size)[ranks]


def generate(rows: int, users: int, items: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(features, labels, oracle probabilities)``: ids as strings, labels 0/1, the true probabilities."""
    world = np.random.default_rng(1000 + seed)  # the hidden model: the same for training and test rows
    user_vec, item_vec = world.normal(scale=0.45, size=(users, 8)), world.normal(scale=0.45, size=(items, 8))
    user_bias, item_bias = world.normal(scale=0.5, size=users), world.normal(scale=0.5, size=items)
    item_category = world.integers(0, 50, size=items)
    category_effect, device_effect, hour_effect = (world.normal(scale=s, size=n) for s, n in ((0.3, 50), (0.3, 4), (0.2, 24)))
    mix = world.normal(scale=1.0 / np.sqrt(8), size=(8, 8))  # conversion's view of the same user and item vectors
    rng = np.random.default_rng(seed)
    u, i = zipf_ids(rng, rows, users), zipf_ids(rng, rows, items)
    device, hour = rng.integers(0, 4, size=rows), rng.integers(0, 24, size=rows)
    c = item_category[i]
    affinity = np.einsum("rd,rd->r", user_vec[u], item_vec[i])  # the id-by-id interaction
    click = -1.0 + user_bias[u] + item_bias[i] + 1.5 * affinity + category_effect[c] + device_effect[device] + hour_effect[hour]
    conversion = (-2.0 + 0.5 * user_bias[u] + 0.8 * item_bias[i] + 0.8 * affinity
                  + np.einsum("rd,de,re->r", user_vec[u], mix, item_vec[i]) + 0.5 * category_effect[c])
    oracle = {"click": 1 / (1 + np.exp(-click)), "conversion": 1 / (1 + np.exp(-conversion))}
    labels = {task: (rng.random(rows) < p).astype(np.float32) for task, p in oracle.items()}
    features = {"user_id": u, "item_id": i, "item_category": c, "device": device, "hour": hour}
    return {name: values.astype(str) for name, values in features.items()}, labels, oracle


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first[counts > 1], counts[counts > 1]):
        ranks[order[start:start + count]] = ranks[order[start:start + count]].mean()
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- the plain tf_keras MMoE ------------------------------------------------
def plain_mmoe(vocabularies: dict[str, np.ndarray]) -> keras.Model:
    inputs, parts = {}, []
    for name in IDS:
        inputs[name] = keras.Input(shape=(), dtype=tf.int64, name=name)
        parts.append(keras.layers.Embedding(len(vocabularies[name]) + 1, EMBEDDING_DIM)(inputs[name]))
    x = keras.layers.Concatenate()(parts)
    experts = []
    for _ in range(EXPERTS):
        h = x
        for units in EXPERT_UNITS:
            h = keras.layers.Dense(units, activation="relu")(h)
        experts.append(h)
    stacked = tf.stack(experts, axis=1)  # [B, E, H]
    outputs = {}
    for task in TASKS:
        gate = keras.layers.Dense(EXPERTS, activation="softmax")(x)  # [B, E]
        h = tf.einsum("be,beh->bh", gate, stacked)
        for units in TOWER_UNITS:
            h = keras.layers.Dense(units, activation="relu")(h)
        outputs[task] = keras.layers.Dense(1, activation="sigmoid", name=task)(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), loss={task: "binary_crossentropy" for task in TASKS})
    return model


def integer_ids(features: dict[str, np.ndarray], vocabularies: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each id's row in its training vocabulary (1..n), 0 for an id not seen in training."""
    out = {}
    for name in IDS:
        index = {value: row + 1 for row, value in enumerate(vocabularies[name])}
        out[name] = np.array([index.get(value, 0) for value in features[name]], np.int64)
    return out


# -- tfmtl ------------------------------------------------------------------
#: tfmtl variants by name: ``"min_count=3,embedding_l2=0.01,dropout=0.1,kernel_l2=1e-5"`` (any subset).
def variant(spec: str) -> dict[str, Any]:
    """The changed settings a variant name spells (``key=value`` pairs joined by commas; ``"tfmtl default"``: none)."""
    if spec == "tfmtl default":
        return {}
    settings = dict(pair.split("=") for pair in spec.split(","))
    reg = {key: float(settings.pop(key)) for key in ("embedding_l2", "dropout") if key in settings}
    if "kernel_l2" in settings:
        reg["kernel_regularizer"] = keras.regularizers.L2(float(settings.pop("kernel_l2")))
    out: dict[str, Any] = {"regularization": tfmtl.layers.Regularization(**reg)} if reg else {}
    if "min_count" in settings:
        out["min_count"] = int(settings.pop("min_count"))
    if settings:
        raise SystemExit(f"unknown variant settings {sorted(settings)} in {spec!r}")
    return out


def tfmtl_mmoe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], variant: dict[str, Any]) -> keras.Model:
    extra = {"min_count": variant["min_count"]} if "min_count" in variant else {}
    schema = tfmtl.Schema([tfmtl.Categorical(name, embedding_dim=EMBEDDING_DIM, **extra) for name in IDS])
    data = tfmtl.data.MultiTaskData(features, labels, schema, tuple(tfmtl.Task.binary(task) for task in TASKS))
    options = {"regularization": variant["regularization"]} if "regularization" in variant else {}
    model = tfmtl.models.mmoe(data.schema.adapt(data.features), data.tasks, **options)
    model.compile()
    return model


def run(model_name: str, seed: int, train: tuple, test: tuple, epochs: int) -> dict[str, list[float]]:
    """Test AUC per task after each epoch."""
    (train_x, train_y, _), (test_x, test_y, _) = train, test
    keras.utils.set_random_seed(seed)
    if model_name == "plain tf_keras":
        vocabularies = {name: np.unique(train_x[name]) for name in IDS}
        model = plain_mmoe(vocabularies)
        fit_x, eval_x = integer_ids(train_x, vocabularies), integer_ids(test_x, vocabularies)
    else:
        model = tfmtl_mmoe(train_x, train_y, variant(model_name))
        fit_x, eval_x = train_x, test_x
    history: dict[str, list[float]] = {task: [] for task in TASKS}
    for _ in range(epochs):
        model.fit(fit_x, train_y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        predicted = model.predict(eval_x, batch_size=8192, verbose=0)
        for task in TASKS:
            history[task].append(auc(test_y[task], np.asarray(predicted[task]).reshape(-1)))
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=[],
                        help='tfmtl models with settings changed, e.g. "embedding_l2=0,min_count=1" "dropout=0.1"')
    args = parser.parse_args()
    models = ["plain tf_keras", "tfmtl default", *args.variants]
    results: dict[str, list[dict[str, list[float]]]] = {name: [] for name in models}
    oracle_auc: dict[str, list[float]] = {task: [] for task in TASKS}
    for seed in args.seeds:
        features, labels, oracle = generate(args.rows + args.rows // 5, args.users, args.items, seed)
        cut = args.rows
        train = tuple({k: v[:cut] for k, v in part.items()} for part in (features, labels, oracle))
        test = tuple({k: v[cut:] for k, v in part.items()} for part in (features, labels, oracle))
        for task in TASKS:
            oracle_auc[task].append(auc(test[1][task], test[2][task]))
        for name in models:
            start = time.perf_counter()
            results[name].append(run(name, seed, train, test, args.epochs))
            print(f"seed {seed} {name}: {time.perf_counter() - start:.0f} s, "
                  + ", ".join(f"{t} {' '.join(f'{a:.4f}' for a in results[name][-1][t])}" for t in TASKS), flush=True)
    print(f"\n{args.rows:,} training rows, {args.users:,} users, {args.items:,} items, {args.epochs} epochs, "
          f"seeds {args.seeds}; oracle AUC: " + ", ".join(f"{t} {np.mean(oracle_auc[t]):.4f}" for t in TASKS))
    print("\n| model | task | " + " | ".join(f"epoch {e + 1}" for e in range(args.epochs))
          + " | best | last - best | gap closed |")
    print("|---|---|" + "---:|" * (args.epochs + 3))
    for name in models:
        for task in TASKS:
            per_epoch = np.mean([run_[task] for run_ in results[name]], axis=0)  # mean over seeds
            best = np.mean([max(run_[task]) for run_ in results[name]])
            last_minus_best = np.mean([run_[task][-1] - max(run_[task]) for run_ in results[name]])
            plain_best = np.mean([max(run_[task]) for run_ in results["plain tf_keras"]])
            gap = (best - plain_best) / (np.mean(oracle_auc[task]) - plain_best)
            print(f"| {name} | {task} | " + " | ".join(f"{a:.4f}" for a in per_epoch)
                  + f" | {best:.4f} | {last_minus_best:+.4f} | {gap:.0%} |")


if __name__ == "__main__":
    main()
