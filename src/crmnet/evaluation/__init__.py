"""Evaluation stage: prediction, metrics, test sets and peer tables, reports."""
