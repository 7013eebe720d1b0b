"""The tf.Module that an export saves: the model's state and one function per signature."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from tfmtl._compat import tf
from tfmtl.serving.examples import example_spec

#: Signature that returns every task (what TF Serving uses when none is named).
DEFAULT_SIGNATURE = "serving_default"
#: Signature that takes serialized tf.Examples (key ``inputs``) and returns every task.
EXAMPLES_SIGNATURE = "predict_examples"


def task_signature_name(task: str) -> str:
    """Name of the signature that returns only ``task``: ``predict_<task>``.

    Example:

    >>> import tfmtl
    >>> tfmtl.serving.task_signature_name("ctr")
    'predict_ctr'
    """
    return f"predict_{task}"


def input_specs(model: Any) -> dict[str, tf.TensorSpec]:
    """The raw-feature input signature of a model with dict inputs."""
    inputs = model.input
    if not isinstance(inputs, Mapping):
        raise TypeError("export needs a model whose inputs are a dict keyed by feature name")
    return {
        name: tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name) for name, tensor in inputs.items()
    }


def task_kinds(model: Any) -> dict[str, str]:
    """Task name to kind (``"binary"``/``"regression"``/``"multiclass"``/``None`` if unknown), in output order."""
    outputs = model.output
    if not isinstance(outputs, Mapping):
        raise TypeError("export needs a model whose outputs are a dict keyed by task name")
    declared = {task.name: task.kind.value for task in getattr(model, "tasks", ())}
    return {name: declared.get(name) for name in outputs}


def _squeeze_scalar(tensor: tf.Tensor) -> tf.Tensor:
    # [B, 1] -> [B]: one value per example, the shape TF Serving's Regress and REST
    # row format expect. Wider outputs ([B, C]) keep their shape.
    if tensor.shape.rank == 2 and tensor.shape[1] == 1:
        return tf.reshape(tensor, [-1])
    return tensor


class ModelState(tf.Module):
    """What an export saves as its root object: the model's variables and lookup tables.

    Saving the Keras model object itself would also make tf_keras serialize every
    layer (configs that include whole vocabularies, re-traced call functions):
    about 90 s instead of 1 s for a 1M-id vocabulary. The signatures need only
    the variables and the tables they capture.

    With ``stored`` (a :class:`~tfmtl.serving.tables.StoredTables`), the stored copies of
    tables replace the trained tables and their vocabularies.
    """

    def __init__(self, model: Any, stored: Any = None) -> None:
        super().__init__(name="tfmtl_state")
        replaced = {id(v) for v in stored.replaced_variables()} if stored is not None else set()
        self.model_variables = [v for v in model.variables if id(v) not in replaced]
        self.stored_tables = stored.modules if stored is not None else []
        dropped = _resources(stored.replaced_lookups()) if stored is not None else []
        added = _resources(stored.lookups()) if stored is not None else []
        self.resources = [r for r in _resources([model]) if all(r is not d for d in dropped)] + added


def _resources(layers: list[Any]) -> list[Any]:
    """The resources (e.g. the StaticHashTable of a StringLookup) held by ``layers`` and their sublayers."""
    found: list[Any] = []
    for layer in layers:
        for module in [layer, *layer.submodules]:
            for value in vars(module).values():
                if isinstance(value, tf.saved_model.experimental.TrackableResource) and value not in found:
                    found.append(value)
    return found


class ServingModule(tf.Module):
    """What gets saved: the model (variables, lookup tables) and the signature functions.

    Signatures:

    * ``serving_default``: raw features in, every task out;
    * ``predict_<task>``: raw features in, one task out;
    * with ``examples=True``: ``predict_examples`` (serialized ``tf.Example``s in,
      key ``inputs``; every task out), ``classify_<task>`` for binary tasks
      (``classes`` ``[B, 2]`` = ``b"0"``, ``b"1"`` and ``scores`` ``[B, 2]`` =
      ``1 - p``, ``p``) and multi-class tasks (``classes`` ``[B, C]`` = the task's
      class names, ``scores`` ``[B, C]`` = its probabilities), and ``regress_<task>``
      for regression tasks (``outputs`` ``[B]``), the shapes TF Serving's Classify
      and Regress APIs require.

    A multi-class task's ``predict_<task>`` output is its ``[B, C]`` probabilities.
    """

    def __init__(self, model: Any, *, examples: bool = True) -> None:
        super().__init__(name="tfmtl_serving")
        self.model = model
        self._specs = input_specs(model)
        self._kinds = task_kinds(model)
        self._classes = {
            task.name: tuple(name.encode() for name in task.classes)
            for task in getattr(model, "tasks", ()) if task.kind.value in ("binary", "multiclass")
        }
        self._examples = examples

    @property
    def task_names(self) -> list[str]:
        return list(self._kinds)

    def _predict(self, features: Mapping[str, tf.Tensor], tasks: list[str]) -> dict[str, tf.Tensor]:
        outputs = self.model(dict(features), training=False)
        return {task: _squeeze_scalar(tf.cast(outputs[task], tf.float32)) for task in tasks}

    def _parse(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return tf.io.parse_example(serialized, example_spec(self._specs))

    def _raw(self, body: Callable[[Mapping[str, tf.Tensor]], dict[str, tf.Tensor]]) -> Any:
        @tf.function(input_signature=[self._specs])
        def serve(features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return body(features)

        return serve.get_concrete_function()

    def _from_examples(self, body: Callable[[Mapping[str, tf.Tensor]], dict[str, tf.Tensor]]) -> Any:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def serve(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            return body(self._parse(serialized))

        return serve.get_concrete_function()

    def _plan(self) -> dict[str, tuple[str, Callable[[], Any]]]:
        """Signature name -> (request kind, builder of its concrete function): one place for both."""
        tasks = self.task_names
        plan: dict[str, tuple[str, Callable[[], Any]]] = {
            DEFAULT_SIGNATURE: ("predict", lambda: self._raw(lambda f: self._predict(f, tasks))),
        }
        for task in tasks:
            plan[task_signature_name(task)] = ("predict", lambda t=task: self._raw(lambda f: self._predict(f, [t])))
        if not self._examples:
            return plan
        plan[EXAMPLES_SIGNATURE] = ("predict_examples", lambda: self._from_examples(lambda f: self._predict(f, tasks)))
        for task, kind in self._kinds.items():
            if kind in ("binary", "multiclass"):
                plan[f"classify_{task}"] = ("classify", lambda t=task: self._from_examples(lambda f: self._classify(f, t)))
            elif kind == "regression":
                plan[f"regress_{task}"] = (
                    "regress", lambda t=task: self._from_examples(lambda f: {"outputs": self._predict(f, [t])[t]})
                )
        return plan

    def signature_kinds(self) -> dict[str, str]:
        """Signature name to request kind: predict, predict_examples, classify or regress."""
        return {name: kind for name, (kind, _) in self._plan().items()}

    @property
    def specs(self) -> dict[str, tf.TensorSpec]:
        return dict(self._specs)

    def signatures(self) -> dict[str, Any]:
        """Signature name to concrete function, for ``tf.saved_model.save``."""
        return {name: build() for name, (_, build) in self._plan().items()}

    def _classify(self, features: Mapping[str, tf.Tensor], task: str) -> dict[str, tf.Tensor]:
        scores = self._predict(features, [task])[task]  # [B] (binary) or [B, C]
        if scores.shape.rank == 1:
            scores = tf.stack([1.0 - scores, scores], axis=1)  # [B, 2]
        classes = tf.tile(tf.constant([list(self._classes[task])]), [tf.shape(scores)[0], 1])  # [B, C]
        return {"classes": classes, "scores": scores}
