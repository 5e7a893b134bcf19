"""Train a GNN backbone and write the run into the zoo (or run another task: `soup=learned`, ...).

python train.py                                   # GCN on Cora
python train.py dataset=citeseer backbone=gat     # swap components
python train.py -m seed=0,1,2 backbone=gcn,sage   # sweep; every run lands in the zoo
"""

import hydra
from omegaconf import DictConfig

from gnnzoo.tasks.run import cli, run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return run_task(cfg)


if __name__ == "__main__":
    cli(main)
