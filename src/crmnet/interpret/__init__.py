"""Interpretation stage: attributions (saliency, ISM), known-motif scanning, enrichment, de novo motifs."""
