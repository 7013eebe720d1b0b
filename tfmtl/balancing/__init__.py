"""Loss balancing: how a multi-task model turns its per-task losses into one update.

Pass a strategy to :meth:`tfmtl.models.MultiTaskModel.compile`
(``model.compile(balancer=tfmtl.balancing.UncertaintyWeighting())``). Every
strategy starts from the per-task losses already multiplied by the tasks'
static ``loss_weight``; the weights a strategy adds on top are logged every step
as ``<task>/weight`` (the History keeps the last value of each epoch, which is
what a notebook plots).

Loss-only strategies (cheap: one backward pass):

* :class:`FixedWeights`: the static weights only (the default);
* :class:`UncertaintyWeighting`: learned task uncertainties (Kendall et al., 2018);
* :class:`DynamicWeightAverage`: weights from the rate at which each loss falls
  (Liu et al., 2019);
* :class:`RandomLossWeighting`: random weights every step (Lin et al., 2021);
* :class:`GeometricLossStrategy`: the geometric mean of the losses (Chennupati et al., 2019);
* :class:`IMTLL`: learned loss scales that bring every scaled loss to 1 (IMTL-L; Liu et al., 2021);
* :class:`SmoothTchebycheff`: a smooth maximum of the losses normalised by their
  means after a warm-up (STCH; Lin et al., 2024);
* :class:`FAMO`: weights that make every loss fall at the same rate, from one extra
  forward pass per step (Liu et al., 2023).

Gradient strategies look at each task's gradient on the *shared* parameters (one
backward pass per task) and work inside ``tf.distribute`` replica contexts: the
per-task gradients are all-reduced across replicas before they are combined, so
every replica applies the same update.

* :class:`GradNorm`: weights that equalise the tasks' gradient norms (Chen et al., 2018);
* :class:`PCGrad`: conflicting gradient components projected away (Yu et al., 2020);
* :class:`MGDA`: the minimum-norm point of the tasks' gradients' convex hull (Sener and
  Koltun, 2018; at the representation in LibMTL's ``rep_grad`` form);
* :class:`CAGrad`: the average gradient, moved to raise the worst task's improvement
  (Liu et al., 2021);
* :class:`NashMTL`: the Nash bargaining solution of the tasks (Navon et al., 2022);
* :class:`ParetoWeights`: min-norm weights with a floor per task (PE-LTR; Lin et al., 2019);
* :class:`IMTLG`: the update whose projections on every task's unit gradient are equal
  (IMTL-G; Liu et al., 2021);
* :class:`AlignedMTL`: the task gradients aligned to orthogonal components of equal norm
  (Senushkin et al., 2023);
* :class:`GradVac`: gradients moved toward each pair's running cosine similarity (Wang et al., 2021);
* :class:`MetaBalance`: auxiliary tasks' gradients rescaled toward the target task's norm
  (He et al., 2022);
* :class:`DBMTL`: log losses, and moving averages of the task gradients scaled to the
  largest norm (DB-MTL; Lin et al., 2023; at the parameters only);
* :class:`GradDrop`: at each unit, the task gradients of one sign kept, chosen by their
  sign purity (Chen et al., 2020; at the representation as published).

The shared parameters are the trainable variables (outside the feature
embeddings, by default) that receive a gradient from at least two tasks; pass
``layers=`` to choose them by layer name instead (embeddings included, if named).
With ``compile(gradients_at="representation")`` the gradient strategies work on the
per-task gradients of the shared representation instead (one backward pass per task
through its tower only; :mod:`tfmtl.objective.representation`).

The strategies are applied by the model's :class:`~tfmtl.objective.MultiTaskObjective`.
"""

from __future__ import annotations

from typing import Any

from tfmtl.balancing.aligned_mtl import AlignedMTL
from tfmtl.balancing.base import GradientBalancer, LossBalancer, counter_uniform, with_gradient
from tfmtl.balancing.cagrad import CAGrad
from tfmtl.balancing.db_mtl import DBMTL
from tfmtl.balancing.dwa import DynamicWeightAverage
from tfmtl.balancing.famo import FAMO
from tfmtl.balancing.fixed import FixedWeights
from tfmtl.balancing.gls import GeometricLossStrategy
from tfmtl.balancing.graddrop import GradDrop
from tfmtl.balancing.gradnorm import GradNorm
from tfmtl.balancing.gradvac import GradVac
from tfmtl.balancing.imtl import IMTLL
from tfmtl.balancing.imtl_g import IMTLG
from tfmtl.balancing.metabalance import MetaBalance
from tfmtl.balancing.mgda import MGDA
from tfmtl.balancing.nash_mtl import NashMTL
from tfmtl.balancing.pcgrad import PCGrad, project_conflicting
from tfmtl.balancing.pe_ltr import ParetoWeights
from tfmtl.balancing.rlw import RandomLossWeighting
from tfmtl.balancing.stch import SmoothTchebycheff
from tfmtl.balancing.uncertainty import UncertaintyWeighting


def check_balancer(balancer: Any) -> LossBalancer:
    """A balancer object (default :class:`FixedWeights`); strings are refused with the allowed classes.

    Example:

    >>> import tfmtl
    >>> tfmtl.balancing.check_balancer(None)
    FixedWeights()
    """
    if balancer is None:
        return FixedWeights()
    if not isinstance(balancer, LossBalancer):
        allowed = ", ".join(cls.__name__ for cls in STRATEGIES)
        raise TypeError(f"balancer must be a tfmtl.balancing strategy object ({allowed}), got {balancer!r}")
    return balancer


#: Every strategy, in the order the docs and benchmarks list them.
STRATEGIES = (
    FixedWeights, UncertaintyWeighting, DynamicWeightAverage, RandomLossWeighting,
    GeometricLossStrategy, IMTLL, SmoothTchebycheff, FAMO,
    GradNorm, PCGrad, MGDA, CAGrad, NashMTL, ParetoWeights, IMTLG, AlignedMTL, GradVac, MetaBalance,
    DBMTL, GradDrop,
)

__all__ = [
    "AlignedMTL",
    "CAGrad",
    "DBMTL",
    "DynamicWeightAverage",
    "FAMO",
    "GeometricLossStrategy",
    "GradDrop",
    "GradientBalancer",
    "FixedWeights",
    "GradNorm",
    "GradVac",
    "IMTLG",
    "IMTLL",
    "LossBalancer",
    "MGDA",
    "MetaBalance",
    "NashMTL",
    "PCGrad",
    "ParetoWeights",
    "RandomLossWeighting",
    "STRATEGIES",
    "SmoothTchebycheff",
    "UncertaintyWeighting",
    "check_balancer",
    "counter_uniform",
    "project_conflicting",
    "with_gradient",
]
