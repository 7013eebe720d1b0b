"""Config-driven CLI: train, evaluate and export from the shipped example config; invalid configs."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.cli import main

EXAMPLE = pathlib.Path(tfmtl.__file__).parents[1] / "examples" / "train.toml"


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> pathlib.Path:
    """The example config on 1,500 synthetic rows, one small epoch."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "synthetic").mkdir()
    train, valid = tfmtl.data.synthetic_recsys(1500, seed=2).split(0.8, seed=0)
    tfmtl.data.write_csv(train, folder / "synthetic" / "train.csv")
    tfmtl.data.write_csv(valid, folder / "synthetic" / "valid.csv")
    text = EXAMPLE.read_text()
    for old, new in (("epochs = 3", "epochs = 2"), ("expert_units = [64, 32]", "expert_units = [8]"),
                     ("checkpoint_every = 200", "checkpoint_every = 10"), ('"../export/example"', '"export/example"')):
        assert old in text
        text = text.replace(old, new)
    path = folder / "train.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_cli_trains_evaluates_and_exports_a_model_that_answers_like_it(config, capsys):
    assert main(["train", str(config)]) == 0
    run = config.parent / "runs" / "example"
    assert (run / "model.keras").exists() and tfmtl.training.Checkpoints(run / "checkpoints").latest() is not None
    assert list((run / "logs" / "validation").glob("events.out.tfevents.*"))
    assert main(["evaluate", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "click/auc" in printed and "conversion/auc" in printed
    assert main(["export", str(config)]) == 0

    model = keras.models.load_model(run / "model.keras")
    assert isinstance(model.balancer, tfmtl.balancing.UncertaintyWeighting)
    assert isinstance(model.optimizer, tfmtl.training.LazyAdam)
    assert [task.name for task in model.tasks] == ["click", "conversion"]
    assert model.schema["hour"].vocabulary  # learned from the training file
    features, _ = next(iter(tfmtl.training.load_config(config).read("validation")))
    expected = model.predict(features, verbose=0)
    [version] = [path for path in (config.parent / "export" / "example").iterdir() if path.name.isdigit()]
    served = tf.saved_model.load(str(version)).signatures["serving_default"](**features)
    for task in ("click", "conversion"):
        np.testing.assert_allclose(served[task].numpy().reshape(-1), expected[task].reshape(-1), atol=1e-6)

    # [output] table_dtype and keep_ids reach the export: the next version stores int8 rows of 20 users
    text = config.read_text().replace('table_dtype = "float32"', 'table_dtype = "int8"')
    config.write_text(text.replace("# keep_ids = { user_id = 100000 }", "keep_ids = { user_id = 20 }"))
    assert main(["export", str(config)]) == 0
    reader = tf.train.load_checkpoint(str(version.parent / "2" / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    assert any(dtypes[name] == tf.int8 and shape == [21, 8] for name, shape in reader.get_variable_to_shape_map().items())


@pytest.mark.parametrize(
    "edit, message",
    [
        (('architecture = "mmoe"', 'architecture = "mmoo"'), r"model.architecture = 'mmoo' is unknown; allowed: adatt, aitm, cgc"),
        (('class = "UncertaintyWeighting"', 'class = "Uncertainty"'), r"balancer.class = 'Uncertainty' is unknown; allowed: .*GradNorm"),
        (('kind = "numeric"', 'kind = "number"'), r"features\[6\].kind = 'number' is unknown; allowed: bucketized"),
        (("num_experts = 4", "num_expert = 4"), r"model \(mmoe\): unknown key\(s\) \['num_expert'\]; allowed: .*num_experts"),
        (("batch_size = 256", "batchsize = 256"), r"\[data\]: unknown key\(s\) \['batchsize'\]; allowed: batch_size"),
        (('format = "csv"', 'format = "avro"'), r"data.format = 'avro' is unknown; allowed: csv, parquet, tfrecord"),
        (("embedding_dim = 4\nid_type", "embed_dim = 4\nid_type"), r"features\[5\] \(hour\): unknown key\(s\) \['embed_dim'\]"),
        (('class = "LazyAdam"', 'class = "LazyAdamm"'), r"optimizer.class = 'LazyAdamm' is unknown; allowed: .*LazyAdam"),
        (('table_dtype = "float32"', 'table_dtype = "fp8"'),
         r"output.table_dtype = 'fp8' is unknown; allowed: float16, float32, int8"),
        (("# keep_ids = { user_id = 100000 }", "keep_ids = { user_id = 0 }"),
         r"output.keep_ids.user_id = 0: expected a positive int"),
        (("# keep_ids = { user_id = 100000 }", "keep_ids = { user = 10 }"),
         r"output.keep_ids.user: not a vocabulary table; allowed: device, hour, item_category, item_id, user_id"),
    ],
    ids=["architecture", "balancer", "feature kind", "model key", "data key", "format", "feature key", "optimizer",
         "table dtype", "keep ids", "keep ids table"],
)
def test_invalid_configs_name_the_key_and_the_allowed_values(tmp_path, edit, message):
    _refused(tmp_path, edit, message)


@pytest.mark.parametrize(
    "edit, message",
    [
        (("batch_size = 256", 'batch_size = "256"'), r"data.batch_size = '256': expected int, got str"),
        (("seed = 0", "seed = true"), r"data.seed = True: expected int, got bool"),
        (("embedding_dim = 4\nid_type", 'embedding_dim = "4"\nid_type'),
         r"features\[5\] \(hour\).embedding_dim = '4': expected int, got str"),
        (("log = true", 'log = "yes"'), r"features\[6\] \(user_activity\).log = 'yes': expected bool, got str"),
        (('tower_units = [32]', 'tower_units = "16"'),
         r"tasks\[0\] \(click\).tower_units = '16': expected list or int, got str"),
        (("epochs = 3", "epochs = 2.5"), r"fit.epochs = 2.5: expected int, got float"),
    ],
    ids=["data int", "data bool", "feature int", "feature bool", "task units", "fit int"],
)
def test_values_of_the_wrong_type_name_the_key_and_the_type(tmp_path, edit, message):
    _refused(tmp_path, edit, message)


def _refused(tmp_path, edit, message):
    text = EXAMPLE.read_text()
    assert edit[0] in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ValueError, match=message):
        config = tfmtl.training.load_config(path)
        config.read("train")  # the format is checked when the files are read


def test_the_regularization_table_reaches_the_model_and_its_keys_are_checked(tmp_path):
    text = EXAMPLE.read_text().replace("num_experts = 4", "num_experts = 4\ncross_layers = 1\nregularization = { dropout = 0.1, embedding_l2 = 1e-5 }")
    path = tmp_path / "reg.toml"
    path.write_text(text)
    config = tfmtl.training.load_config(path)
    model = config.build_model(config.schema.adapt(tfmtl.data.synthetic_recsys(200, seed=0).features))
    assert model.get_layer("features").embedding_l2 == 1e-5 and model.get_layer("cross_0") is not None
    assert model.get_layer("mixture_of_experts").regularization.dropout == 0.1
    path.write_text(text.replace("dropout = 0.1", "drop = 0.1"))
    with pytest.raises(ValueError, match=r"model.regularization: unknown key\(s\) \['drop'\]; allowed: .*dropout"):
        tfmtl.training.load_config(path).build_model(config.schema.adapt(tfmtl.data.synthetic_recsys(200, seed=0).features))


def test_a_config_knows_the_schema_its_architecture_gives_the_model(tmp_path):
    """What a warm start compares the previous model with: STEM's model carries every embedding (T+1) times wider."""
    text = EXAMPLE.read_text().replace('architecture = "mmoe"', 'architecture = "stem"').replace("num_experts = 4\n", "")
    path = tmp_path / "stem.toml"
    path.write_text(text)
    config = tfmtl.training.load_config(path)
    schema = config.schema.adapt(tfmtl.data.synthetic_recsys(200, seed=0).features)
    widened = config.model_schema(schema)
    assert config.build_model(schema).schema == widened
    assert widened["user_id"].embedding_dim == (len(config.tasks) + 1) * schema["user_id"].embedding_dim
    mmoe = tfmtl.training.load_config(EXAMPLE)
    assert mmoe.model_schema(schema) is schema


def test_the_balancer_table_names_the_strategy_its_arguments_and_where_gradients_are_taken(tmp_path):
    text = EXAMPLE.read_text().replace(
        'class = "UncertaintyWeighting"', 'class = "ParetoWeights"\nmin_weights = [0.1, 0.2]\ngradients_at = "representation"'
    )
    path = tmp_path / "pareto.toml"
    path.write_text(text)
    config = tfmtl.training.load_config(path)
    balancer = config.build_balancer()
    assert isinstance(balancer, tfmtl.balancing.ParetoWeights) and config.gradients_at == "representation"
    assert balancer.get_config()["min_weights"] == [0.1, 0.2]
    model = config.build_model(config.schema.adapt(tfmtl.data.synthetic_recsys(200, seed=0).features))
    model.compile(balancer=balancer, gradients_at=config.gradients_at)
    assert model.objective.gradients_at == "representation"


@pytest.mark.slow
def test_cli_warm_starts_the_next_day_from_the_previous_run_and_exports_the_next_version(tmp_path):
    """Day 0 trains as usual; day 1 (new files, its own output.dir) grows day 0's vocabularies and starts from it."""
    text = EXAMPLE.read_text()
    for old, new in (("epochs = 3", "epochs = 1"), ("expert_units = [64, 32]", "expert_units = [8]"),
                     ('"../export/example"', '"export/daily"')):
        text = text.replace(old, new)
    configs = []
    for day in (0, 1):
        folder = tmp_path / f"day{day}"
        folder.mkdir()
        data = tfmtl.data.synthetic_recsys(1500, num_items=200, day=day, seed=2)
        train, valid = data.split(0.8, seed=0)
        tfmtl.data.write_csv(train, folder / "train.csv")
        tfmtl.data.write_csv(valid, folder / "valid.csv")
        day_text = text.replace('"synthetic/train.csv"', f'"day{day}/train.csv"')
        day_text = day_text.replace('"synthetic/valid.csv"', f'"day{day}/valid.csv"')
        day_text = day_text.replace('dir = "runs/example"', f'dir = "runs/day{day}"')
        configs.append(tmp_path / f"day{day}.toml")
        configs[-1].write_text(day_text)
    assert main(["train", str(configs[0])]) == 0
    day0 = keras.models.load_model(tmp_path / "runs" / "day0" / "model.keras")
    assert main(["train", str(configs[1]), "--warm-start", str(tmp_path / "runs" / "day0")]) == 0
    day1 = keras.models.load_model(tmp_path / "runs" / "day1" / "model.keras")
    old, new = day0.schema["item_id"].vocabulary, day1.schema["item_id"].vocabulary
    assert new[: len(old)] == old and len(new) > len(old) and day1.schema["item_id"].updates == 1
    assert day1.schema["user_activity"] == day0.schema["user_activity"]  # statistics stay
    [version] = [path for path in (tmp_path / "export" / "daily").iterdir() if path.name.isdigit()]
    features, _ = next(iter(tfmtl.training.load_config(configs[1]).read("validation")))
    served = tf.saved_model.load(str(version)).signatures["serving_default"](**features)
    np.testing.assert_allclose(served["click"].numpy().reshape(-1), day1.predict(features, verbose=0)["click"].reshape(-1),
                               atol=1e-6)
    with pytest.raises(ValueError, match="is this run's own output"):  # a rerun would start from its result
        main(["train", str(configs[1]), "--warm-start", str(tmp_path / "runs" / "day1")])
    # a config that changes more than the vocabularies is refused, naming the feature
    configs[1].write_text(configs[1].read_text().replace('name = "device"\nembedding_dim = 4',
                                                         'name = "device"\nembedding_dim = 6'))
    with pytest.raises(ValueError, match=r"feature 'device': .* embedding_dim changed \(4 before, 6 now\)"):
        main(["train", str(configs[1]), "--warm-start", str(tmp_path / "runs" / "day0" / "model.keras")])
