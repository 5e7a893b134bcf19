"""Forecasting Model Search: a checkpoint- and curve-aware multi-fidelity search (hydra/sweeper=fms)."""
