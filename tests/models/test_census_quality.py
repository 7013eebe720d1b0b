"""Census-income quality on the real files (a subset, one seed): the MMoE paper's task groups."""

import pytest

import tfmtl
from tfmtl._compat import keras
from tfmtl.data.census import _default_dir


def _census_available():
    return (_default_dir() / "census-income.data.gz").exists()


@pytest.mark.slow
@pytest.mark.skipif(not _census_available(), reason="census-income files not found (see ../shared/data/README.md)")
@pytest.mark.parametrize("group, main, floor", [(1, "income", 0.92), (2, "education", 0.86)])
def test_mmoe_on_a_census_subset_beats_the_floor(group, main, floor):
    schema = tfmtl.data.census_schema(16)
    train, validation, test = tfmtl.data.census_income(group=group, max_rows=40_000, schema=schema)
    schema = schema.adapt(train.features)
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64, 32), cross_layers=1)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train.to_dataset(512, shuffle=True, seed=0), epochs=3, verbose=0)
    predictions = model.predict(test.features, batch_size=8192, verbose=0)
    auc = {task: tfmtl.data.roc_auc(test.labels[task], predictions[task][:, 0]) for task in model.task_names}
    print(f"group {group}: {auc}")
    assert auc[main] > floor, auc
    assert auc["marital"] > 0.98, auc
