"""Limits and settings of ``crmnet serve``: one typed config, shown on the pages as they are enforced."""

from __future__ import annotations

from dataclasses import dataclass

from crmnet.config import Config


@dataclass(frozen=True)
class ServeConfig(Config):
    """What the server accepts and how long it works.

    max_request_bytes: the largest request body (an upload included); larger is refused with HTTP 413.
    max_sequences: sequences per prediction; max_length: nucleotides per sequence (any page).
    max_mutate_sequences: sequences per robustness/evolvability job (each costs 3·L mutant predictions per
        model). max_evolve_sequences, max_generations, max_population, max_lineages (start sequences ×
        population): the size of an evolution job. max_designs: designs per Design job (levels × per level).
    job_seconds: wall-clock limit of one job; max_queued: jobs waiting or running before new ones are
        refused; keep_jobs: finished jobs kept for their pages and downloads (oldest dropped first).
    batch_size: sequences per forward pass (as ``crmnet predict``'s default, so the numbers are the same).
    device: torch device of the models.
    """

    max_request_bytes: int = 4 * 1024 * 1024
    max_sequences: int = 20_000
    max_length: int = 1_000
    max_mutate_sequences: int = 200
    max_evolve_sequences: int = 10
    max_generations: int = 200
    max_population: int = 200
    max_lineages: int = 1_000
    max_designs: int = 60
    job_seconds: float = 600.0
    max_queued: int = 8
    keep_jobs: int = 50
    batch_size: int = 1024
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_sequences", "max_length", "max_mutate_sequences",
                     "max_evolve_sequences", "max_generations", "max_population", "max_lineages", "max_designs", "max_queued",
                     "keep_jobs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.job_seconds > 0:
            raise ValueError(f"job_seconds must be positive, got {self.job_seconds}")
