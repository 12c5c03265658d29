"""Interpretation stage: attributions, known motifs, de novo motifs, and scoring against a simulation.

Modules, in import order (each imports only those above it):

* :mod:`~crmnet.interpret.stats` — Benjamini-Hochberg q-values and the exact mHG test;
* :mod:`~crmnet.interpret.attribution` — saliency (input × gradient) and ISM in sequence coordinates;
* :mod:`~crmnet.interpret.scanning` — FIMO scanning of known motifs (memelite);
* :mod:`~crmnet.interpret.matching` — TOMTOM comparison of motifs with the known ones (memelite);
* :mod:`~crmnet.interpret.enrichment` — Figure 5F (sequence-level, paired) and 5G statistics;
* :mod:`~crmnet.interpret.scoring` — ground truth: planted-site attribution (ratio, AUROC), strict and
  lenient motif recovery, per class;
* :mod:`~crmnet.interpret.teacher_score` — ground truth in teacher mode: a student's map against the
  teacher's ISM (per-sequence correlation, top-k overlap and AUROC, sign agreement);
* :mod:`~crmnet.interpret.kmers` — k-mer and gapped k-mer enrichment, mHG k-mers, merging into motifs;
* :mod:`~crmnet.interpret.denovo` — TF-MoDISco and the discovery pipeline (``crmnet motifs``);
* :mod:`~crmnet.interpret.figure5` — the Figure 5 pipeline (``crmnet interpret``).

Figures are drawn by :mod:`crmnet.plot.interpret`; tables are written by :mod:`crmnet.tables`.
"""
