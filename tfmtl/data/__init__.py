"""Built-in data: a synthetic click/conversion generator and the UCI census-income loader."""

from tfmtl.data.census import census_income
from tfmtl.data.dataset import MultiTaskData
from tfmtl.data.stats import roc_auc
from tfmtl.data.synthetic import synthetic_recsys, synthetic_schema, synthetic_tasks

__all__ = ["MultiTaskData", "census_income", "roc_auc", "synthetic_recsys", "synthetic_schema", "synthetic_tasks"]
