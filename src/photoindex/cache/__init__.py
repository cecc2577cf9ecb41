"""The result cache as the services use it: recording what ingest observed, rebuilding from it."""
