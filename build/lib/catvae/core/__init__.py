"""Shared plumbing: config, artifacts, loggers, images, devices."""
