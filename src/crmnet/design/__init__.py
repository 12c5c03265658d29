"""Design analyses on any model: variant effects, saturation mutagenesis, evolvability and evolution.

Modules: :mod:`~crmnet.design.oracle` (predictors over sequence-space codes, objectives combining models),
:mod:`~crmnet.design.variants`, :mod:`~crmnet.design.mutagenesis`, :mod:`~crmnet.design.evolvability`,
:mod:`~crmnet.design.outputs` (the files of ``crmnet mutagenesis``), :mod:`~crmnet.design.evolve`,
:mod:`~crmnet.design.constraints` (what a design must satisfy, checked by every design command),
:mod:`~crmnet.design.library` (graded libraries at target levels) and :mod:`~crmnet.design.library_io`
(the files of ``crmnet design``).
"""
