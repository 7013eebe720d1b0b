"""What Keras's entry points do with raw feature dicts before Keras sees them.

Keras would turn a Python list into a nested structure, refuse a ragged one, check
inputs by position and, with ``steps_per_execution > 1``, refuse data of unknown size
and run ``*_on_batch`` several times on one batch. :class:`RawInputEntryPoints` puts
:meth:`~tfmtl.features.Schema.conform` (the one set of rules, errors naming the
feature) in front of ``__call__``, ``fit``, ``evaluate`` and ``predict``, and handles
the step counts.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.preprocessing import is_preprocessed
from tfmtl.objective.labels import is_text


class RawInputEntryPoints:
    """Mixin for a Keras model with a ``schema``: raw inputs conformed at every entry point."""

    schema: Any
    preprocessor: Any  # a FeaturePreprocessor

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(self._conformed(inputs), *args, **kwargs)

    def _conformed(self, inputs: Any) -> Any:
        """Raw inputs checked and converted by :meth:`Schema.conform`; symbolic or preprocessed ones as given."""
        if is_preprocessed(inputs):
            return inputs
        if isinstance(inputs, Mapping) and any(_is_keras_tensor(value) for value in inputs.values()):
            return inputs
        return self.schema.conform(inputs)

    def _conformed_data(self, x: Any) -> Any:
        return self._conformed(x) if isinstance(x, Mapping) else x

    def fit(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Keras ``fit``; raw feature dicts are checked and preprocessed once, not at every step of every epoch."""
        x = self._conformed_data(x)
        _check_label_rows(x, y)
        # Preprocessed once; not when Keras will cut validation rows from x (they stay raw, as
        # evaluation with compile(gauc_by=...) needs).
        if isinstance(x, Mapping) and not is_preprocessed(x) and not kwargs.get("validation_split"):
            x = self.preprocessor.for_dataset(x)
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple) and validation and isinstance(validation[0], Mapping):
            features = self._conformed(validation[0])  # once, not at every epoch's evaluation
            _check_label_rows(features, validation[1] if len(validation) > 1 else None)
            kwargs["validation_data"] = (features, *validation[1:])
        with self._fitting_steps(x, kwargs.get("steps_per_epoch")), _fresh_function_after_failure(self, "train"):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, negatives_sampled: bool = True, **kwargs: Any) -> Any:
        """Keras ``evaluate``; raw feature dicts are checked by the schema first.

        ``negatives_sampled=False`` says the data hold every negative (not downsampled as
        the training data were): a task with a ``negative_sampling_rate`` then takes its
        loss and metrics on its (corrected) predictions with every row counted once,
        instead of counting each negative ``1 / rate`` times.
        """
        if kwargs.get("_use_cached_eval_dataset"):  # fit's validation: its data were checked when fit began
            return super().evaluate(x, y, *args, **kwargs)
        x = self._conformed_data(x)
        _check_label_rows(x, y)
        # (the unsampled switch first: a step function made for data of unknown size is made at the real count)
        with _unsampled_negatives(self, negatives_sampled), self._fitting_steps(x, kwargs.get("steps")), \
                _fresh_function_after_failure(self, "test"):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras ``predict``; raw feature dicts are checked by the schema first (0 rows give 0 rows)."""
        x = self._conformed_data(x)
        if isinstance(x, Mapping) and not is_preprocessed(x) and _rows(x) == 0:
            return tf.nest.map_structure(lambda tensor: tensor.numpy(), self(x, training=False))
        if isinstance(x, tf.data.Dataset) and int(x.cardinality()) == 0:  # Keras refuses empty data
            return {name: np.zeros([0, *tensor.shape[1:]], np.float32) for name, tensor in self.output.items()}
        with self._fitting_steps(x, kwargs.get("steps")), _fresh_function_after_failure(self, "predict"):
            return super().predict(x, *args, **kwargs)

    def _fitting_steps(self, x: Any, steps: Any) -> Any:
        """One step per execution for a dataset of unknown size with no step count (Keras needs one then)."""
        if (
            steps is None and isinstance(x, tf.data.Dataset)
            and int(x.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
        ):
            return _one_step_per_execution(self)
        return contextlib.nullcontext()

    # Keras's *_on_batch run the step function steps_per_execution times on one batch.
    def train_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        with _one_step_per_execution(self):
            return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        with _one_step_per_execution(self):
            return super().test_on_batch(*args, **kwargs)

    def predict_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        with _one_step_per_execution(self):
            return super().predict_on_batch(*args, **kwargs)


def _is_keras_tensor(value: Any) -> bool:
    try:
        return keras.backend.is_keras_tensor(value)
    except ValueError:  # not a tensor at all
        return False


def _check_label_rows(x: Any, y: Any) -> None:
    # Label types are checked here too: an error raised inside Keras's step loop comes out garbled.
    if isinstance(x, tf.data.Dataset) and isinstance(x.element_spec, tuple) and len(x.element_spec) > 1:
        labels = x.element_spec[1]
        for key, spec in (labels.items() if isinstance(labels, Mapping) else ()):
            if getattr(spec, "dtype", None) == tf.string:
                raise TypeError(f"label {key!r} must hold numbers (NaN = missing), got strings")
    if not (isinstance(x, Mapping) and isinstance(y, Mapping)) or is_preprocessed(x):
        return
    rows = _rows(x)
    for key, value in y.items():
        if is_text(value):
            raise TypeError(f"label {key!r} must hold numbers (NaN = missing), got strings")
        count = len(value) if hasattr(value, "__len__") else None
        if rows is not None and count is not None and count != rows:
            raise ValueError(f"label {key!r} has {count} rows but the features have {rows}: give one label per example")


def _rows(features: Mapping[str, Any]) -> int | None:
    first = next(iter(features.values()), None)
    return None if first is None or first.shape.rank is None else first.shape[0]


@contextlib.contextmanager
def _one_step_per_execution(model: Any) -> Iterator[None]:
    counter = getattr(model, "_steps_per_execution", None)
    if counter is None:
        yield
        return
    before = int(counter.numpy())
    # Keras builds a step function that runs a single step when it first makes one while the counter reads 1,
    # and keeps it: a later fit would then train on one batch in every `before`, and predict return as few
    # rows. So they are made at the real count first (with the counter at 1 they run one step).
    for kind in ("train", "test", "predict"):
        if getattr(model, f"{kind}_function", None) is None:
            getattr(model, f"make_{kind}_function")()
    counter.assign(1)
    try:
        yield
    finally:
        counter.assign(before)



@contextlib.contextmanager
def _unsampled_negatives(model: Any, negatives_sampled: bool) -> Iterator[None]:
    """Inside: the objective's losses and metrics take evaluation data holding every negative.

    The switch is read when the test step is traced, so the model keeps one test function per
    setting (for its current objective: ``compile`` makes a new one) and swaps them.
    """
    if not isinstance(negatives_sampled, bool):
        raise TypeError(f"negatives_sampled must be True or False, got {negatives_sampled!r}")
    objective = getattr(model, "objective", None)
    if negatives_sampled or objective is None or all(t.negative_sampling_rate == 1 for t in objective.tasks):
        yield
        return
    sampled_function = model.test_function
    cached = model.__dict__.get("_tfmtl_unsampled_test")
    objective.negatives_sampled = False
    model.test_function = cached[1] if cached is not None and cached[0] is objective else None
    try:
        yield
        if model.test_function is not None:  # kept only when it ran: a failed trace is not reused
            model.__dict__["_tfmtl_unsampled_test"] = (objective, model.test_function)
    finally:
        objective.negatives_sampled = True
        model.test_function = sampled_function


@contextlib.contextmanager
def _fresh_function_after_failure(model: Any, kind: str) -> Any:
    """After a failed fit/evaluate/predict, the next call traces a new step function.

    A step that fails while it is first traced leaves Keras's cached ``tf.function``
    marked as having created variables, and every later call would fail with "Creating
    variables on a non-first call"; the model stays usable instead. A failure after a
    step has run (the step counter moved) keeps the traced function.
    """
    counter = getattr(model, f"_{kind}_counter", None)
    before = int(counter.numpy()) if counter is not None else None
    try:
        yield
    except Exception:
        # (Keras sets the counter to 0 before the first step, so 0 after a failure means no step ran either)
        if counter is None or int(counter.numpy()) in (before, 0):
            setattr(model, f"{kind}_function", None)
        raise


__all__ = ["RawInputEntryPoints"]
