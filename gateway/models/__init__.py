"""The model registry (model_configs/ and prompts/ as typed data), the catalogue, and the GPU memory
arithmetic the catalogue and the launchers share. Imports settings and errors only; never launchers.
"""
