"""Shared building blocks of the intent pipeline: each module holds one concern used by several stages."""
