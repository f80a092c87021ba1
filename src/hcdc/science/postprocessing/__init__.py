"""hcdc.science.postprocessing."""
