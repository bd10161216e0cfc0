"""Plan -> the desired objects (plain dicts). Pure.

:func:`render`: an endpoint's children (:mod:`.workloads`); :func:`render_fine_tuning`: a
fine-tuning run's (:mod:`.finetuning`); both run the one worker pod of :mod:`.pod`."""

from .finetuning import render_fine_tuning
from .workloads import render

__all__ = ["render", "render_fine_tuning"]
