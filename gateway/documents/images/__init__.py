"""Page images: decoding with its safety checks, the model's resize policy, and box geometry back to the original."""
