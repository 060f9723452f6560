"""Schedules of the training recipe (SPEC 2), as pure functions of the optimiser step."""

from __future__ import annotations

import math

__all__ = ["learning_rate_factor", "linear_ramp"]


def linear_ramp(step: int, ramp_steps: int, start: float, end: float) -> float:
    """``start`` at step 0, linear to ``end`` at ``ramp_steps``, then held at ``end``."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return end
    return start + (end - start) * step / ramp_steps


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, floor: float) -> float:
    """Multiplier of the base learning rate: linear warm-up, then a cosine down to ``floor``.

    Args:
        step: optimiser step (0-based).
        warmup_steps: steps of the linear warm-up from ``1 / warmup_steps`` to 1.
        total_steps: all steps of the run; the cosine reaches ``floor`` at the last one.
        floor: final multiplier (``lr_min / lr``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - 1 - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2
