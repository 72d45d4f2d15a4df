"""Orchestration: the pipeline DAG, its evaluation config, data preparation and run summaries."""
