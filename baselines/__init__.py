"""Competitor mixing methods, each an ordinary bomix Optimizer registered by name.

Fixed-weight baselines live in `baselines.fixed`; the law-fitting ones (BiMix, data mixing laws,
RegMix) join them here, all under the same trial budget and the same optimizer contract.
"""
