import numpy as np
import pytest

import tfmtl
from tfmtl.data import MultiTaskData, census_income, roc_auc, synthetic_recsys


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(float)
    s = np.round(rng.random(200), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert roc_auc(y, s) == pytest.approx(pairwise)


def test_synthetic_is_deterministic_and_a_funnel():
    a, b = synthetic_recsys(5000, seed=4), synthetic_recsys(5000, seed=4)
    for name in a.features:
        np.testing.assert_array_equal(a.features[name], b.features[name])
    click, conversion = a.labels["click"], a.labels["conversion"]
    assert np.all(conversion <= click)  # a conversion needs a click
    assert 0.05 < click.mean() < 0.2
    assert conversion.mean() < click.mean() / 4  # conversions far rarer than clicks
    assert not np.array_equal(synthetic_recsys(5000, seed=5).labels["click"], click)


def test_oracle_probabilities_are_informative_and_relatedness_knob_works():
    data = synthetic_recsys(20_000, seed=0)
    for task in ("click", "conversion"):
        assert roc_auc(data.labels[task], data.oracle[task]) > 0.75

    def cvr_click_correlation(rho):
        d = synthetic_recsys(20_000, task_relatedness=rho, seed=0)
        p_cvr = d.oracle["conversion"] / d.oracle["click"]
        return np.corrcoef(np.log(d.oracle["click"]), np.log(p_cvr / (1 - p_cvr)))[0, 1]

    low, mid, high = cvr_click_correlation(0.0), cvr_click_correlation(0.5), cvr_click_correlation(1.0)
    assert low < mid < high
    assert high > 0.5 and abs(low) < 0.3
    with pytest.raises(ValueError, match="task_relatedness"):
        synthetic_recsys(10, task_relatedness=1.5)


def test_container_checks_name_the_column():
    schema = tfmtl.Schema([tfmtl.Numeric("price"), tfmtl.Categorical("item")])
    tasks = (tfmtl.Task.binary("ctr", label="click"),)
    good = {"price": np.array([1.0, 2.0]), "item": np.array(["a", "b"])}
    labels = {"click": np.array([1.0, 0.0])}
    with pytest.raises(ValueError, match="task 'ctr' has no label column 'click'"):
        MultiTaskData(good, {}, schema, tasks)
    with pytest.raises(ValueError, match="'price' contains NaN"):
        MultiTaskData({**good, "price": np.array([1.0, np.nan])}, labels, schema, tasks)
    with pytest.raises(TypeError, match="'item' expects string ids"):
        MultiTaskData({**good, "item": np.array([1, 2])}, labels, schema, tasks)
    with pytest.raises(ValueError, match="different numbers of rows"):
        MultiTaskData({**good, "item": np.array(["a"])}, labels, schema, tasks)
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['color'\]"):
        MultiTaskData({**good, "color": np.array(["r", "g"])}, labels, schema, tasks)
    features, labels_out = next(iter(MultiTaskData(good, labels, schema, tasks).to_dataset(2)))
    assert sorted(features) == ["item", "price"] and list(labels_out) == ["click"]


def test_census_income_matches_the_published_statistics():
    train, validation, test = census_income(max_rows=3000)
    assert len(train) == 3000 and len(validation) == 1500 and len(test) == 1500
    again = census_income(max_rows=3000)[2]
    np.testing.assert_array_equal(again.labels["income"], test.labels["income"])  # the split seed is fixed
    np.testing.assert_array_equal(again.features["age"], test.features["age"])
    assert [t.name for t in train.tasks] == ["income", "marital"]
    assert "instance_weight" not in train.features and "marital_stat" not in train.features
    assert "education" not in train.features
    assert len(train.features) == 38  # 40 attributes minus education and marital status
    assert 0.03 < train.labels["income"].mean() < 0.1  # 6.2% on the full file
    assert 0.35 < train.labels["marital"].mean() < 0.5  # 43.4% on the full file
    assert train.features["age"].dtype == np.float32
    education, _, _ = census_income(group=2, max_rows=2000)
    assert [t.name for t in education.tasks] == ["education", "marital"]
    assert 0.1 < education.labels["education"].mean() < 0.4


def test_census_split_seed_is_read_when_called(monkeypatch):
    other = census_income(max_rows=1000, split_seed=7)[2]
    monkeypatch.setattr(tfmtl.data.census, "SPLIT_SEED", 7)
    np.testing.assert_array_equal(census_income(max_rows=1000)[2].features["age"], other.features["age"])
    monkeypatch.undo()
    assert not np.array_equal(census_income(max_rows=1000)[2].features["age"], other.features["age"])


def test_census_missing_folder_gives_guidance(tmp_path):
    with pytest.raises(FileNotFoundError, match="TFMTL_DATA_DIR"):
        census_income(tmp_path)


def test_mmoe_synthetic_correlation_knob_and_fixed_task_pair():
    def label_corr(p, seed):
        d = tfmtl.data.mmoe_synthetic(5000, correlation=p, seed=seed)
        return np.corrcoef(d.labels["y1"], d.labels["y2"])[0, 1]

    means = {p: np.mean([label_corr(p, seed) for seed in range(4)]) for p in (0.5, 0.9, 1.0)}
    assert means[0.5] < means[0.9] < means[1.0]
    assert means[1.0] > 0.99 and means[0.5] < 0.3  # the sines pull the label correlation far below p
    a, b = tfmtl.data.mmoe_synthetic(100, correlation=0.5, seed=3), tfmtl.data.mmoe_synthetic(100, correlation=0.9, seed=3)
    np.testing.assert_array_equal(a.features["x"], b.features["x"])  # same rows for every p
    np.testing.assert_array_equal(a.labels["y1"], b.labels["y1"])  # task 1 does not depend on p
    assert not np.array_equal(a.labels["y2"], b.labels["y2"])
    assert tfmtl.data.mmoe_synthetic(10, preset="ple").features["x"].shape == (10, 512)
    # The noise-free target plus N(0, 0.1^2) noise is the label.
    assert np.std(a.labels["y1"] - a.oracle["y1"]) == pytest.approx(0.1, rel=0.25)
    with pytest.raises(ValueError, match="preset"):
        tfmtl.data.mmoe_synthetic(10, preset="other")


def test_mmoe_synthetic_alpha_std_sets_the_sine_frequencies():
    # alpha = 0: every sine is the constant sin(beta_i), so y_k = w_k.x + const + noise and corr(y1, y2) = p.
    flat = tfmtl.data.mmoe_synthetic(20_000, correlation=0.5, alpha_std=0.0, seed=1)
    assert np.corrcoef(flat.labels["y1"], flat.labels["y2"])[0, 1] == pytest.approx(0.5, abs=0.03)
    def linear_residual(data):  # max |oracle - best affine fit in x|
        design = np.c_[data.features["x"].astype(np.float64), np.ones(len(data))]
        target = data.oracle["y1"].astype(np.float64)
        return np.abs(design @ np.linalg.lstsq(design, target, rcond=None)[0] - target).max()

    assert linear_residual(flat) < 1e-3  # affine in x
    assert linear_residual(tfmtl.data.mmoe_synthetic(2000, correlation=0.5, seed=1)) > 0.5  # the default's sines are not
    with pytest.raises(ValueError, match="alpha_std must be a number >= 0"):
        tfmtl.data.mmoe_synthetic(10, alpha_std=-1.0)


def test_drifting_items_keep_their_attributes_from_day_to_day():
    days = [tfmtl.data.synthetic_recsys(6_000, num_items=140, item_lifetime=7, item_text_dim=3, day=d, seed=5)
            for d in (0, 1, 2, 3)]
    live = [{int(i[1:]) for i in d.features["item_id"]} for d in days]
    assert max(live[0]) < 140 and min(live[3]) >= 3 * 20 - 20 and max(live[3]) >= 140 + 2 * 20  # 20 new a day
    assert not live[3] & set(range(40))  # the first cohorts are gone
    for a, b in ((1, 2), (2, 3), (1, 3)):
        for name in ("item_text", "item_price", "item_category"):
            first = {i: v for i, v in zip(days[a].features["item_id"], days[a].features[name].tolist())}
            second = {i: v for i, v in zip(days[b].features["item_id"], days[b].features[name].tolist())}
            shared = set(first) & set(second)
            assert len(shared) > 50 and all(first[i] == second[i] for i in shared), (name, a, b)
    default = tfmtl.data.synthetic_recsys(2_000, seed=5)  # without day: the fixed items, as before
    assert len({i for i in default.features["item_id"]}) <= 1_000
