"""Curation: duplicates, archive with undo, reports and clusters."""
