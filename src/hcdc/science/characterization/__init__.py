"""hcdc.science.characterization."""
