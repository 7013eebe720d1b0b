"""UCI Census-Income (KDD) with the MMoE paper's task groups, read from local files.

Data: UCI Machine Learning Repository, "Census-Income (KDD)", donated by Terran
Lane and Ronny Kohavi; CC BY 4.0. The files are not shipped with tfmtl: point
``data_dir`` (or the ``TFMTL_DATA_DIR`` environment variable) at a folder with
``census-income.data.gz`` and ``census-income.test.gz``; by default the
project's ``../shared/data/census-income`` is used, else the copy in the
repository's ``tests/data/census-income``.
"""

from __future__ import annotations

import csv
import gzip
import os
import pathlib

import numpy as np

from tfmtl.data.dataset import MultiTaskData
from tfmtl.features.bucketized import Bucketized
from tfmtl.features.categorical import Categorical
from tfmtl.features.schema import Schema
from tfmtl.features.numeric import Numeric
from tfmtl.tasks.task import Task

COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour", "hs_college",
    "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin", "sex", "union_member",
    "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses", "stock_dividends",
    "tax_filer_stat", "region_prev_res", "state_prev_res", "det_hh_fam_stat", "det_hh_summ",
    "instance_weight", "mig_chg_msa", "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt",
    "num_emp", "fam_under_18", "country_father", "country_mother", "country_self", "citizenship",
    "own_or_self", "vet_question", "vet_benefits", "weeks_worked", "year", "income_50k",
)  # fmt: skip
NUMERIC = ("age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp", "weeks_worked")
#: Heavy-tailed money columns (mostly 0, up to 99,999): log-transformed by ``census_schema(transforms=True)``.
HEAVY_TAILED = ("wage_per_hour", "capital_gains", "capital_losses", "stock_dividends")
#: Seed of the paper's 1:1 validation/test split of the test file (the paper's own seed is not published).
SPLIT_SEED = 2018
#: Never features: the survey weight (per UCI's notes), and the label sources.
EXCLUDED = ("instance_weight", "income_50k", "marital_stat", "education")
#: "At least college" for group 2 (associate degrees and up; see shared/data/README.md).
COLLEGE = (
    "Associates degree-academic program", "Associates degree-occup /vocational", "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)", "Doctorate degree(PhD EdD)", "Prof school degree (MD DDS DVM LLB JD)",
)  # fmt: skip


def _default_dir() -> pathlib.Path:
    env = os.environ.get("TFMTL_DATA_DIR")
    if env:
        return pathlib.Path(env) / "census-income"
    repo = pathlib.Path(__file__).resolve().parents[2]
    candidates = [
        repo / ".." / "shared" / "data" / "census-income",
        pathlib.Path.cwd() / ".." / "shared" / "data" / "census-income",
        repo / "tests" / "data" / "census-income",  # the copy shipped with the repository
    ]
    for candidate in candidates:
        if (candidate / "census-income.data.gz").exists():
            return candidate.resolve()
    return candidates[0]


def _read(path: pathlib.Path, max_rows: int | None) -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {name: [] for name in COLUMNS}
    with gzip.open(path, "rt", encoding="latin-1", newline="") as handle:
        for index, row in enumerate(csv.reader(handle, skipinitialspace=True)):
            if max_rows is not None and index >= max_rows:
                break
            if not row:
                continue
            if len(row) != len(COLUMNS):
                raise ValueError(f"{path}: line {index + 1} has {len(row)} fields, expected {len(COLUMNS)}")
            for name, value in zip(COLUMNS, row):
                columns[name].append(value)
    return columns


def census_schema(
    embedding_dim: int = 8, *, log_money: bool = True, age_buckets: int = 0, numeric_embedding_dim: int | None = None
) -> Schema:
    """The (unadapted) feature schema: 31 categorical columns and 7 numeric ones.

    Args:
      embedding_dim: Embedding size of the categorical (and bucketized) features.
      log_money: Log-transform the heavy-tailed money columns (``Numeric(log=True)``).
      age_buckets: If > 0, ``age`` and ``weeks_worked`` are embedded by that many
        quantile buckets (``Bucketized``) instead of standardized.
      numeric_embedding_dim: If set, the (other) numeric columns are embedded by a
        periodic embedding of that size (``Numeric(embedding_dim=...)``) instead of
        passed on as one standardized value.

    Example:

    >>> import tfmtl
    >>> schema = tfmtl.data.census_schema(age_buckets=16, numeric_embedding_dim=16)
    >>> len(schema), schema["capital_gains"].log, type(schema["age"]).__name__, schema["capital_gains"].output_dim
    (38, True, 'Bucketized', 16)
    """
    features = []
    for name in COLUMNS:
        if name in EXCLUDED:
            continue
        if name not in NUMERIC:
            features.append(Categorical(name, embedding_dim=embedding_dim))
        elif age_buckets and name in ("age", "weeks_worked"):
            features.append(Bucketized(name, embedding_dim=embedding_dim, num_buckets=age_buckets))
        else:
            features.append(Numeric(name, log=log_money and name in HEAVY_TAILED, embedding_dim=numeric_embedding_dim))
    return Schema(features)


def _to_data(columns: dict[str, list[str]], group: int, schema: Schema) -> MultiTaskData:
    features = {
        spec.name: np.asarray(columns[spec.name], dtype=np.float32 if spec.name in NUMERIC else object)
        for spec in schema
    }
    for name in NUMERIC:  # written as floats ("0", "1200.0")
        features[name] = np.asarray([float(v) for v in columns[name]], dtype=np.float32)
    marital = np.asarray([value == "Never married" for value in columns["marital_stat"]], dtype=np.float32)
    if group == 1:
        main = np.asarray([value == "50000+." for value in columns["income_50k"]], dtype=np.float32)
        tasks = (Task.binary("income"), Task.binary("marital"))
        labels = {"income": main, "marital": marital}
    else:
        main = np.asarray([value in COLLEGE for value in columns["education"]], dtype=np.float32)
        tasks = (Task.binary("education"), Task.binary("marital"))
        labels = {"education": main, "marital": marital}
    return MultiTaskData(features=features, labels=labels, schema=schema, tasks=tasks)


def census_income(
    data_dir: str | os.PathLike | None = None,
    *,
    group: int = 1,
    max_rows: int | None = None,
    schema: Schema | None = None,
    split_seed: int | None = None,
) -> tuple[MultiTaskData, MultiTaskData, MultiTaskData]:
    """Load census-income's train and test files as two :class:`MultiTaskData`.

    Tasks follow Ma et al. (KDD 2018) §6.3: group 1 is ``income`` (> 50K) and
    ``marital`` (never married); group 2 is ``education`` (at least an associate
    degree) and ``marital``. ``education``, ``marital_stat`` and the survey's
    ``instance_weight`` are never features. ``?`` is kept as its own category.

    Args:
      data_dir: Folder with ``census-income.data.gz`` and ``census-income.test.gz``.
      group: 1 or 2.
      max_rows: Read at most this many rows of each file (for quick runs).
      schema: The feature schema (default :func:`census_schema()`), unadapted.
      split_seed: Seed of the random 1:1 split of the test file into validation
        and test, as in the paper (whose seed is not published). Default: the module's
        :data:`SPLIT_SEED` as it is when called, so every run compares on the same rows.

    Returns:
      ``(train, validation, test)``: the 199,523-row training file and the two
      halves of the 99,762-row test file.

    Example:

    >>> import tfmtl
    >>> train, validation, test = tfmtl.data.census_income(max_rows=1000)  # doctest: +SKIP
    >>> [task.name for task in train.tasks], len(validation), len(test)  # doctest: +SKIP
    (['income', 'marital'], 500, 500)
    """
    if group not in (1, 2):
        raise ValueError(f"group must be 1 or 2, got {group!r}")
    folder = pathlib.Path(data_dir) if data_dir is not None else _default_dir()
    paths = [folder / "census-income.data.gz", folder / "census-income.test.gz"]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(
                f"census-income file not found: {path}. Pass data_dir= or set TFMTL_DATA_DIR to the folder "
                "holding census-income/ (see ../shared/data/README.md)."
            )
    schema = schema if schema is not None else census_schema()
    train, held_out = (_to_data(_read(path, max_rows), group, schema) for path in paths)
    validation, test = held_out.split(0.5, seed=SPLIT_SEED if split_seed is None else split_seed)
    return train, validation, test
