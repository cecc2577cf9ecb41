"""HTTP faces: the REST API and the ML inference service."""
