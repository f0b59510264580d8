"""Trainers on the fused ops: one loop (Trainer) for every model (RECIPES), with checkpoints, metrics, evaluation
and the BiGAN paper's Table-1 protocol. See fastgan.train.trainer for the run directory's contents."""
from .config import BACKENDS, TrainConfig, lr_factor
from .evaluation import evaluate
from .recipes import RECIPES, Recipe, config_for, validate
from .table1 import METHODS, format_table, run_table1
from .trainer import Trainer

__all__ = ["BACKENDS", "METHODS", "RECIPES", "Recipe", "TrainConfig", "Trainer", "config_for", "evaluate",
           "format_table", "lr_factor", "run_table1", "validate"]
