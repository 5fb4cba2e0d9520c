"""Maintenance tools for the book: re-execute a chapter in place, check the built HTML."""
