"""Quantization noise and the spectra: GGUF block quantizers against the float weights."""
