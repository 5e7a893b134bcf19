"""GNN-Diff (``generate.py``): parameter autoencoder + graph-conditioned latent diffusion over the checkpoints
of a light search. See :mod:`gnnzoo.generate.task` for the pipeline."""
