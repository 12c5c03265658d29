"""Training stage: configs, the loop, exact resume, distributed launch, schedules and losses."""
