"""The training recipe's defaults: train's options take them, and training/recipe_sweep.py
fills in what a recipe leaves out from them, so the two cannot drift apart."""

from __future__ import annotations

# Peak encoder learning rate 1e-4 (the heads take 20x): 5e-5 and 2e-4 scored lower on the same split.
DEFAULTS: dict[str, int | float] = {"epochs": 10, "lr": 1e-4, "batch": 16, "seed": 13, "class_weight_power": 0.5,
                                    "dropout": 0.0, "max_length": 128}
