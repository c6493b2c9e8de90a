"""The pipeline: tasks -> documents -> requests -> backend -> parse -> score -> write, one task at a
time (pipeline.evaluate), with batching and data-parallel sharding around it; `mibe.evaluate`."""
