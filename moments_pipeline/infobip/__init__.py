"""The Infobip Moments API client: async, rate-limited, never re-sends an ambiguous request.

No Dagster import here (a test enforces it).
"""
