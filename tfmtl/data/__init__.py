"""Built-in data (synthetic click/conversion funnel, the MMoE paper's synthetic tasks, UCI census-income)
and streaming file readers."""

from tfmtl.data.census import census_income, census_schema
from tfmtl.data.dataset import MultiTaskData, preprocessed
from tfmtl.data.files import (
    read_csv, read_files, read_parquet, read_tfrecord, write_csv, write_parquet, write_tfrecord,
)
from tfmtl.data.mmoe_synthetic import mmoe_synthetic
from tfmtl.data.stats import roc_auc
from tfmtl.data.synthetic import synthetic_recsys, synthetic_schema, synthetic_tasks

__all__ = [
    "MultiTaskData", "preprocessed", "census_income", "census_schema", "mmoe_synthetic", "read_csv", "read_files", "read_parquet",
    "read_tfrecord", "roc_auc", "synthetic_recsys", "synthetic_schema", "synthetic_tasks", "write_csv", "write_parquet",
    "write_tfrecord",
]
