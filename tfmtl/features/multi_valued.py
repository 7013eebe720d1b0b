"""Multi-valued ids (a bag per example, e.g. an item's tags): a :class:`~tfmtl.features.Sequence` without order.

The layout, lookup and encoder are the sequence's (:mod:`tfmtl.features.sequence`);
a bag pools by mean or sum only, optionally weighted by a parallel ``<name>_weights`` input.
"""

from __future__ import annotations

import dataclasses

from tfmtl.features.kinds import FeatureKind, Pooling
from tfmtl.features.sequence import Sequence


@dataclasses.dataclass(frozen=True)
class MultiValued(Sequence):
    """A bag of ids per example (e.g. an item's tags), mean- or sum-pooled.

    The same padded ``[batch, max_len]`` input as :class:`Sequence` (order does not
    matter); with ``weighted=True`` a parallel ``<name>_weights`` ``[batch, max_len]``
    float32 input weights each id (weighted mean: ``sum(w e) / sum(w)``).

    Example:

    >>> import tfmtl
    >>> tags = tfmtl.features.MultiValued("tags", max_len=5, pooling="sum", weighted=True)
    >>> sorted(tags.input_specs())
    ['tags', 'tags_weights']
    """

    kind = FeatureKind.MULTI_VALUED

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooling not in (Pooling.MEAN, Pooling.SUM):
            raise ValueError(f"feature {self.name!r}: multi-valued features pool by 'mean' or 'sum'")


__all__ = ["MultiValued"]
