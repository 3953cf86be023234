"""Search over generator parameters: Optuna's search space and the sweep summary."""
