"""How a :class:`~tfmtl.models.MultiTaskModel` is saved and loaded: ``.keras`` files with compile and balancer state."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf


class KerasSaving:
    """The model's part of Keras saving (mixed into ``MultiTaskModel``).

    * ``save`` refuses HDF5, which cannot hold the schema, lookup tables and balancer;
    * ``get_compile_config``/``compile_from_config``: ``load_model`` compiles the model
      again with the arguments given to ``compile`` (task defaults stay defaults) and
      restores the optimizer's state;
    * ``save_own_variables``/``load_own_variables``: the balancing strategy's state
      (learned uncertainties, GradNorm weights, DWA history), which Keras does not
      track, is stored next to the model's own variables.
    """

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        """Keras ``save``; the ``.keras`` format (a ``.h5`` file would not load back: it is refused)."""
        if str(filepath).endswith((".h5", ".hdf5")) or kwargs.get("save_format") == "h5":
            raise ValueError(
                f"cannot save a tfmtl model as HDF5 ({filepath}): its schema, preprocessing tables and balancer "
                "do not fit that format. Save to a '.keras' file, or use tfmtl.serving.export for serving"
            )
        super().save(filepath, *args, **kwargs)

    # Keras restores compile() on load only when a model with its own compile() says how.
    def get_compile_config(self) -> dict[str, Any] | None:
        """The arguments given to ``compile`` (task defaults stay defaults), serialized."""
        if not getattr(self, "_tfmtl_compile_args", None):
            return None
        args = {"optimizer": self.optimizer, **self._tfmtl_compile_args}
        return {key: keras.saving.serialize_keras_object(value) for key, value in args.items()}

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile again from :meth:`get_compile_config`'s output (used by ``load_model``)."""
        self.compile(**{key: keras.saving.deserialize_keras_object(value) for key, value in config.items()})
        if self.built and isinstance(self.optimizer, keras.optimizers.Optimizer):
            self.optimizer.build(self._variables_to_train())  # so saved slots load

    def _balancer_variables(self) -> list[tf.Variable]:
        objective = self.__dict__.get("_objective")
        return list(objective.balancer.variables) if objective is not None else []

    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)
        for index, variable in enumerate(self._balancer_variables()):
            store[f"balancer_{index}"] = variable.numpy()

    def load_own_variables(self, store: Any) -> None:
        keys = list(store.keys())
        super().load_own_variables({key: store[key] for key in keys if not key.startswith("balancer_")})
        for index, variable in enumerate(self._balancer_variables()):
            if f"balancer_{index}" in keys:
                variable.assign(store[f"balancer_{index}"])


__all__ = ["KerasSaving"]
