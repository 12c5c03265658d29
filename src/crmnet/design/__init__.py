"""Design analyses on any model: variant effects, saturation mutagenesis, evolvability and evolution.

Modules: :mod:`~crmnet.design.oracle` (predictors over sequence-space codes, objectives combining models),
:mod:`~crmnet.design.variants`, :mod:`~crmnet.design.mutagenesis`, :mod:`~crmnet.design.evolvability`,
:mod:`~crmnet.design.outputs` (the files of ``crmnet mutagenesis``) and :mod:`~crmnet.design.evolve`.
"""
