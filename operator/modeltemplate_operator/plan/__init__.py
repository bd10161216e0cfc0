"""Spec + operator settings -> the plan: GPU and worker resolution, a Model's parameters and overrides, staged and GPU-aware rollout, a fine-tuning run. Pure."""
