"""Custom TFX components. The pipeline uses only standard TFX components so far."""
