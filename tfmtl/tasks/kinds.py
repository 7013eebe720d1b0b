"""Task kinds."""

import enum


class TaskKind(enum.Enum):
    """What a task predicts.

    * ``BINARY``: a probability (sigmoid head, binary cross-entropy);
    * ``REGRESSION``: a real value (linear head, mean squared error);
    * ``MULTICLASS``: a distribution over ``num_classes`` classes (softmax head,
      sparse categorical cross-entropy; labels are class ids ``0..num_classes-1``).
    """

    BINARY = "binary"
    REGRESSION = "regression"
    MULTICLASS = "multiclass"
