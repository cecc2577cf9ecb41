"""Ingest: walk folders, hash and decode new photos, embed them, commit them to the catalog."""
