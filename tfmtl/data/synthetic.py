"""A synthetic click -> conversion recommendation data set with a known ground truth.

The hidden model, per impression of item i to user u on a device at an hour:

* user latent ``a_u = center[segment_u] + 0.4 * noise`` (8 dims), item latents
  ``b_i = center[category_i] + 0.4 * noise`` and ``c_i`` (private to conversion);
* shared affinity ``s = <a_u, b_i> / sqrt(8)``, conversion-only affinity
  ``r = <a_u, c_i> / sqrt(8)`` (independent of ``s``);
* ``logit(p_click) = 0.8 s + quality_i + bias[category_i] + bias[segment_u]
  + 0.5 log(activity_u) + device + hour - 3.2``;
* ``logit(p_cvr | click) = 1.5 (rho s + sqrt(1 - rho^2) r) - 0.6 log(price_i) - 1.8``;
* ``click ~ Bernoulli(p_click)``, ``conversion = click * Bernoulli(p_cvr)``, so the
  conversion probability per impression is ``p_click * p_cvr``.

Two opt-in signals that only dedicated features can pick up (both off by default,
and then the data are exactly as without them):

* ``history_length=L``: each impression has a session intent, a random category
  ``k``; its ``history`` holds 0..L recent items (most recent first, padded with
  ``""``), 80% of them from category ``k``; ``logit(p_click)`` gains
  ``<center[k], b_i> / sqrt(8)``. The intent changes per impression, so only the
  history (best: target attention with the candidate item) reveals it.
* ``item_text_dim=T``: each item has a hidden 4-dim appeal ``h_i`` and a "text
  embedding" ``item_text`` = ``h_i`` projected to T dims plus noise; ``logit(p_click)``
  gains ``<pref[segment_u], h_i> / 2``. With many items and few impressions each,
  the item id alone cannot learn ``h_i``; the text vector carries it.

``task_relatedness`` is rho: 1 means the conversion depends on the same affinity
as the click, 0 on an independent one. With the defaults the click rate is about 10% and
the conversion rate about 1.3% of impressions. ``oracle`` holds the true probabilities, so the best
possible AUC of each task can be computed.
"""

from __future__ import annotations

import numpy as np

from tfmtl.data.dataset import MultiTaskData
from tfmtl.features.categorical import Categorical
from tfmtl.features.kinds import PAD_STRING, IdType, Pooling
from tfmtl.features.schema import Schema
from tfmtl.features.dense_vector import DenseVector
from tfmtl.features.numeric import Numeric
from tfmtl.features.sequence import Sequence
from tfmtl.tasks.task import Task

_LATENT = 8
_NOISE = 0.4  # idiosyncratic part of each user/item latent, around its segment/category center
_DEVICES = np.array(["ios", "android", "web"])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def synthetic_schema(embedding_dim: int = 8, *, history_length: int = 0, item_text_dim: int = 0) -> Schema:
    """The (unadapted) schema of :func:`synthetic_recsys`'s features.

    With ``history_length``, a ``history`` :class:`~tfmtl.features.Sequence` sharing
    ``item_id``'s table, pooled by target attention with ``item_id``; with
    ``item_text_dim``, an ``item_text`` :class:`~tfmtl.features.DenseVector`.

    Example:

    >>> import tfmtl
    >>> tfmtl.data.synthetic_schema().names[:3]
    ('user_id', 'item_id', 'user_segment')
    >>> tfmtl.data.synthetic_schema(history_length=5, item_text_dim=16).names[-2:]
    ('history', 'item_text')
    """
    extra = []
    if history_length:
        extra.append(Sequence("history", embedding_dim=embedding_dim, max_len=history_length, table="item_id",
                              pooling=Pooling.ATTENTION, query="item_id", attention_units=(16,)))
    if item_text_dim:
        extra.append(DenseVector("item_text", dim=item_text_dim))
    return Schema(
        [
            Categorical("user_id", embedding_dim=embedding_dim),
            Categorical("item_id", embedding_dim=embedding_dim),
            Categorical("user_segment", embedding_dim=embedding_dim),
            Categorical("item_category", embedding_dim=embedding_dim),
            Categorical("device", embedding_dim=4),
            Categorical("hour", embedding_dim=4, id_type=IdType.INT64),
            Numeric("user_activity"),
            Numeric("item_price"),
            Numeric("user_age"),
            *extra,
        ]
    )


def synthetic_tasks(conversion_weight: float = 1.0) -> tuple[Task, Task]:
    """Default tasks: ``click`` and ``conversion`` (binary).

    Example:

    >>> import tfmtl
    >>> [(t.name, t.loss_weight) for t in tfmtl.data.synthetic_tasks(conversion_weight=2.0)]
    [('click', 1.0), ('conversion', 2.0)]
    """
    return (Task.binary("click"), Task.binary("conversion", loss_weight=conversion_weight))


def synthetic_recsys(
    num_rows: int = 100_000,
    *,
    task_relatedness: float = 0.7,
    num_users: int = 2_000,
    num_items: int = 1_000,
    num_segments: int = 8,
    num_categories: int = 20,
    embedding_dim: int = 8,
    history_length: int = 0,
    item_text_dim: int = 0,
    seed: int = 0,
    day: int | None = None,
    item_lifetime: int = 7,
) -> MultiTaskData:
    """Generate impressions with click and conversion labels from a hidden model.

    Args:
      num_rows: Impressions to generate.
      task_relatedness: rho in [0, 1], how much the conversion shares the click's
        user-item affinity (see the module docstring).
      num_users: Distinct users (string ids ``u<k>``).
      num_items: Distinct items (string ids ``i<k>``).
      num_segments: User segments (categorical, drives the user latent).
      num_categories: Item categories (categorical, drives the item latent).
      embedding_dim: Embedding size used in the returned schema.
      history_length: Add the session-intent signal and its ``history`` feature
        (``[rows, history_length]`` item ids) (0 = off).
      item_text_dim: Add the item-appeal signal and its ``item_text`` feature
        (``[rows, item_text_dim]`` float32) (0 = off).
      seed: Seed of every random draw (same seed, same data).
      day: Drifting items, for training day after day: the impressions of day
        ``day`` (0, 1, ...) of a world where items live ``item_lifetime`` days.
        ``num_items // item_lifetime`` new items (ids after the previous days') appear
        every day and as many disappear, so about ``num_items`` are live each day
        (exactly, when ``item_lifetime`` divides it).
        An item keeps its hidden attributes from day to day; the users and their
        attributes are the same every day; each day's impressions are drawn afresh.
        ``None`` (default): one fixed set of items, as without drift.
      item_lifetime: With ``day``: how many days an item lives.

    Returns:
      :class:`MultiTaskData` with labels ``click`` and ``conversion`` and
      ``oracle`` probabilities for both tasks.

    Example:

    >>> import tfmtl
    >>> data = tfmtl.data.synthetic_recsys(20_000, seed=1)
    >>> bool(data.labels["conversion"].mean() < data.labels["click"].mean() / 4)
    True
    >>> day0, day1 = (tfmtl.data.synthetic_recsys(20_000, num_items=700, day=d) for d in (0, 1))
    >>> [(min(k), max(k)) for k in ([int(i[1:]) for i in set(d.features["item_id"])] for d in (day0, day1))]
    [(0, 699), (100, 799)]
    """
    if not 0.0 <= task_relatedness <= 1.0:
        raise ValueError(f"task_relatedness must be in [0, 1], got {task_relatedness}")
    if num_rows < 1:
        raise ValueError(f"num_rows must be >= 1, got {num_rows}")
    if day is not None and (isinstance(day, bool) or not isinstance(day, (int, np.integer)) or day < 0):
        raise ValueError(f"day must be an int >= 0, got {day!r}")
    if day is not None and not 1 <= item_lifetime <= num_items:
        raise ValueError(f"item_lifetime must be in [1, num_items={num_items}], got {item_lifetime}")
    rng = np.random.default_rng(seed)

    # -- users and items (hidden attributes) ------------------------------
    segment_centers = rng.normal(size=(num_segments, _LATENT))
    category_centers = rng.normal(size=(num_categories, _LATENT))
    user_segment = rng.integers(num_segments, size=num_users)
    user_latent = segment_centers[user_segment] + _NOISE * rng.normal(size=(num_users, _LATENT))
    user_activity = rng.lognormal(mean=1.0, sigma=0.6, size=num_users)
    user_age = rng.uniform(18, 70, size=num_users)
    item_category = rng.integers(num_categories, size=num_items)
    item_latent = category_centers[item_category] + _NOISE * rng.normal(size=(num_items, _LATENT))
    private_centers = rng.normal(size=(num_categories, _LATENT))
    item_private = private_centers[item_category] + 0.7 * rng.normal(size=(num_items, _LATENT))
    item_quality = rng.normal(scale=0.6, size=num_items)
    segment_bias = rng.normal(scale=0.4, size=num_segments)
    category_bias = rng.normal(scale=0.5, size=num_categories)
    item_price = rng.lognormal(mean=3.0, sigma=0.8, size=num_items)
    device_effect = np.array([0.2, 0.0, -0.3])
    hour_effect = 0.25 * np.sin(np.arange(24) / 24.0 * 2 * np.pi)

    # -- impressions (popular users and items appear more often) ---------
    user_weight = rng.pareto(1.5, size=num_users) + 1.0
    item_weight = rng.pareto(1.2, size=num_items) + 1.0
    live = np.ones(num_items, bool)
    if day is not None:  # drifting items: each day's cohort of new items, and that day's draws
        item_category, item_latent, item_private, item_quality, item_price, item_weight, live = _drift(
            seed, day, item_lifetime, category_centers, private_centers,
            (item_category, item_latent, item_private, item_quality, item_price, item_weight),
        )
        rng = np.random.default_rng([seed, 4, day])
    item_p = np.where(live, item_weight, 0.0)
    users = rng.choice(num_users, size=num_rows, p=user_weight / user_weight.sum())
    items = rng.choice(len(item_weight), size=num_rows, p=item_p / item_p.sum())
    device = rng.integers(len(_DEVICES), size=num_rows)
    hour = rng.integers(24, size=num_rows)

    shared = np.einsum("nd,nd->n", user_latent[users], item_latent[items]) / np.sqrt(_LATENT)
    private = np.einsum("nd,nd->n", user_latent[users], item_private[items]) / np.sqrt(_LATENT)
    click_logit = (
        0.8 * shared + item_quality[items] + category_bias[item_category[items]] + segment_bias[user_segment[users]]
        + 0.5 * np.log(user_activity[users])
        + device_effect[device] + hour_effect[hour] - 3.2
    )
    extra_features = {}
    extra_rng = np.random.default_rng([seed, 1])  # the default data's draws stay as they were
    if history_length:
        intent = extra_rng.integers(num_categories, size=num_rows)
        click_logit = click_logit + np.einsum("nd,nd->n", category_centers[intent], item_latent[items]) / np.sqrt(_LATENT)
        extra_features["history"] = _histories(extra_rng, intent, item_category, history_length)
    if item_text_dim:
        appeal = extra_rng.normal(size=(num_items, 4))
        projection = extra_rng.normal(size=(4, item_text_dim))
        noise = 0.1 * extra_rng.normal(size=(num_items, item_text_dim))
        if len(item_category) > num_items:  # drifting items: each later cohort's own draws (the same every day)
            per_day = num_items // item_lifetime
            later = np.concatenate([np.random.default_rng([seed, 5, cohort]).normal(size=(per_day, 4 + item_text_dim))
                                    for cohort in range(1, day + 1)])
            appeal = np.concatenate([appeal, later[:, :4]])
            noise = np.concatenate([noise, 0.1 * later[:, 4:]])
        text = appeal @ projection + noise
        preference = extra_rng.normal(size=(num_segments, 4))
        click_logit = click_logit + np.einsum("nd,nd->n", preference[user_segment[users]], appeal[items]) / 2.0
        extra_features["item_text"] = text[items].astype(np.float32)
    rho = task_relatedness
    cvr_logit = 1.5 * (rho * shared + np.sqrt(1.0 - rho * rho) * private) - 0.6 * np.log(item_price[items]) - 1.8
    p_click = _sigmoid(click_logit)
    p_cvr = _sigmoid(cvr_logit)
    click = (rng.random(num_rows) < p_click).astype(np.float32)
    conversion = click * (rng.random(num_rows) < p_cvr).astype(np.float32)

    features = {
        "user_id": np.char.add("u", users.astype(str)),
        "item_id": np.char.add("i", items.astype(str)),
        "user_segment": np.char.add("seg", user_segment[users].astype(str)),
        "item_category": np.char.add("cat", item_category[items].astype(str)),
        "device": _DEVICES[device],
        "hour": hour.astype(np.int64),
        "user_activity": user_activity[users].astype(np.float32),
        "item_price": item_price[items].astype(np.float32),
        "user_age": user_age[users].astype(np.float32),
        **extra_features,
    }
    return MultiTaskData(
        features=features,
        labels={"click": click, "conversion": conversion},
        schema=synthetic_schema(embedding_dim, history_length=history_length, item_text_dim=item_text_dim),
        tasks=synthetic_tasks(),
        oracle={"click": p_click.astype(np.float32), "conversion": (p_click * p_cvr).astype(np.float32)},
    )


def _drift(seed: int, day: int, lifetime: int, category_centers: np.ndarray, private_centers: np.ndarray,
           items: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The items of every cohort born by ``day`` (day 0's are ``items``) and which of them live on ``day``.

    Cohort ``c`` (``per_day`` items, ids after cohort ``c - 1``'s) is drawn from its own seed, so an item
    is the same on every day. Day 0's items are cohorts ``1 - lifetime .. 0``; cohort ``c`` lives on days
    ``c .. c + lifetime - 1``.
    """
    category, latent, private, quality, price, weight = items
    base = len(category)
    per_day = base // lifetime
    parts = [list(items)]
    for cohort in range(1, day + 1):
        rng = np.random.default_rng([seed, 3, cohort])
        c = rng.integers(len(category_centers), size=per_day)
        parts.append([
            c, category_centers[c] + _NOISE * rng.normal(size=(per_day, _LATENT)),
            private_centers[c] + 0.7 * rng.normal(size=(per_day, _LATENT)), rng.normal(scale=0.6, size=per_day),
            rng.lognormal(mean=3.0, sigma=0.8, size=per_day), rng.pareto(1.2, size=per_day) + 1.0,
        ])
    arrays = [np.concatenate(column) for column in zip(*parts)]
    index = np.arange(len(arrays[0]))
    born = np.where(index < base, np.minimum(index // per_day, lifetime - 1) - (lifetime - 1),
                    (index - base) // per_day + 1)  # (per_day >= 1: lifetime <= base is checked)
    live = (born <= day) & (day < born + lifetime)
    return (*arrays, live)


def _histories(rng: np.random.Generator, intent: np.ndarray, item_category: np.ndarray, max_len: int) -> np.ndarray:
    """``[rows, max_len]`` item ids: 0..max_len per row, 80% from the row's intent category, padded with ""."""
    rows = len(intent)
    by_category = np.argsort(item_category, kind="stable")  # items grouped by category
    counts = np.bincount(item_category, minlength=int(intent.max()) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = starts[intent][:, None] + (rng.random((rows, max_len)) * counts[intent][:, None]).astype(int)
    from_intent = (rng.random((rows, max_len)) < 0.8) & (counts[intent][:, None] > 0)
    random_items = rng.integers(len(item_category), size=(rows, max_len))
    history = np.where(from_intent, by_category[np.minimum(pick, len(item_category) - 1)], random_items)
    lengths = rng.integers(max_len + 1, size=rows)
    ids = np.char.add("i", history.astype(str)).astype(object)
    ids[np.arange(max_len)[None, :] >= lengths[:, None]] = PAD_STRING
    return ids
