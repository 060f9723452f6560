"""Schedules of the training recipe (docs/training.md), as pure functions of the optimiser step."""

from __future__ import annotations

import math

__all__ = ["learning_rate_factor", "linear_ramp"]


def linear_ramp(step: int, ramp_steps: int, start: float, end: float, hold_steps: int = 0) -> float:
    """``start`` until ``hold_steps``, then linear to ``end`` at ``ramp_steps``, then held at ``end``."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return end
    if step < hold_steps:
        return start
    return start + (end - start) * (step - hold_steps) / (ramp_steps - hold_steps)


def learning_rate_factor(
    step: int, warmup_steps: int, total_steps: int, floor: float, restarts: int = 0
) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine cycles down to ``floor``.

    Args:
        step: optimiser step (0-based).
        warmup_steps: steps of the linear warm-up from ``1 / warmup_steps`` to 1.
        total_steps: all steps of the run; the last cosine reaches ``floor`` at the last one.
        floor: final multiplier (``lr_min / lr``).
        restarts: the steps after warm-up are split into ``restarts + 1`` equal cosine cycles,
            each starting again at 1 (warm restarts).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - 1 - warmup_steps, 1) / (restarts + 1)
    position = (step - warmup_steps) / span
    cycle = min(int(position), restarts)
    progress = min(position - cycle, 1.0)
    return floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2
