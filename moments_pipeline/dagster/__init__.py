"""Dagster integration: resources, asset factories, checks and definitions.

The only subpackage that imports Dagster.
"""
