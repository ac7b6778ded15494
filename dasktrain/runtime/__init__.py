"""The Dask cluster: local clusters, GPU workers and their memory, placement, waiting on work."""
