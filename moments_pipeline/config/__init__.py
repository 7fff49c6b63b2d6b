"""Audience and form-source configuration: pydantic models and the YAML loader.

Errors name the file and the field. No I/O beyond reading the YAML files it is given.
"""
