"""Semantic and geometric editing on top of the generator interface."""
