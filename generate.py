"""Generate GNN parameters with GNN-Diff: light search -> collected checkpoints -> latent diffusion -> samples.

python generate.py                                 # GCN on Cora
python generate.py dataset=citeseer backbone=sage  # swap components
python generate.py generator.condition.enabled=false generator.sample.n=200
"""

import hydra
from omegaconf import DictConfig

from gnnzoo.tasks.run import cli, run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def main(cfg: DictConfig) -> float:
    return run_task(cfg)


if __name__ == "__main__":
    cli(main)
