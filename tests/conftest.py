"""Shared fixtures: small synthetic data, an adapted schema, a trained MMoE and its export."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # plots render off-screen

import tfmtl
from tfmtl._compat import keras


@pytest.fixture(scope="session")
def small_data() -> tfmtl.data.MultiTaskData:
    return tfmtl.data.synthetic_recsys(4000, seed=3)


@pytest.fixture(scope="session")
def small_schema(small_data) -> tfmtl.Schema:
    return small_data.schema.adapt(small_data.features)


@pytest.fixture(scope="session")
def trained_mmoe(small_data, small_schema) -> tfmtl.models.MultiTaskModel:
    keras.utils.set_random_seed(1)
    model = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=3, expert_units=(16,))
    model.compile()
    model.fit(small_data.to_dataset(256), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="session")
def cxx() -> None:
    """Skip unless a C++ compiler can build the C++ runtime check (tfmtl.serving.cpp)."""
    if tfmtl.serving.cpp.compiler() is None:
        pytest.skip("no C++ compiler (c++, g++ or clang++) to build the C++ check; .ci/run installs g++")


@pytest.fixture(scope="session")
def fresh_mode() -> str:
    """How export checks run an export in a fresh process: TF's C++ Session (TF Serving's runtime) where a
    compiler can build it, else the Python TF1 Session path (``predict_in_fresh_process``'s modes)."""
    return "cpp" if tfmtl.serving.cpp.compiler() else "session"


@pytest.fixture(scope="session")
def exported_mmoe(trained_mmoe, tmp_path_factory):
    return tfmtl.serving.export(trained_mmoe, tmp_path_factory.mktemp("export") / "mmoe")


class RawEncoder:
    """Both feature stages (preprocessing, then the FeatureEncoder) for tests that feed raw values."""

    def __init__(self, schema: tfmtl.Schema) -> None:
        self.preprocess = tfmtl.features.FeaturePreprocessor(schema)
        self.encoder = tfmtl.features.FeatureEncoder(schema)

    def __call__(self, raw):
        return self.encoder(self.preprocess(raw))

    def embed(self, raw):
        return self.encoder.embed(self.preprocess(raw))

    def __getattr__(self, name: str):
        return getattr(self.encoder, name)


@pytest.fixture(scope="session")
def raw_encoder() -> type:
    """:class:`RawEncoder`: ``raw_encoder(schema)(raw_features)`` -> the encoder's ``[B, D]`` output."""
    return RawEncoder
