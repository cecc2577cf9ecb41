"""The REST API routers, one per resource."""
