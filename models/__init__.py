"""Flax networks and their maths (pure JAX): noise schedules, denoisers, VDM and ARDM."""
