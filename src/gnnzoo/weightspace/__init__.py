"""Weight-space learning: checkpoints as neural graphs, and the encoders that read them (task=encoder)."""
