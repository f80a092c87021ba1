"""hcdc.pipeline."""
