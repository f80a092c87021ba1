"""Running the pipeline on a data centre: durable jobs, workers, folder watching, the daily
calibrations and the demo (what an operator starts; the framework is :mod:`hcdc.pipeline`).
The interfaces reach them through :mod:`hcdc.pipeline.operations.operator` (the operator's
entry point, opened from the catalogue facade: ``ProcessingCatalogue.operations``)."""
