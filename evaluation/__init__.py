"""Rate-distortion evaluation: metrics, classical codecs, sweeps, tables and plots."""
