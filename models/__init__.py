"""Flax networks and their maths (pure JAX): noise schedules, denoisers, VDM and ARDM; the model
families that train them (``families``), their checkpoints (``checkpoint``) and where a checkpoint is
found (``registry``)."""
