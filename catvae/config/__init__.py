"""The configuration layer: schemas, Hydra setup, validation and the task wrapper the commands run in."""
