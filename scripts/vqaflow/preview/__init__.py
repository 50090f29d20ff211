"""The preview: the request stages on a sample of the input, and what the full run will take.

sample (which records), run (generating and judging them into their shards' journals),
stats (means, totals and shares with intervals), estimate (the projection of the full run),
summary (the estimate for the terminal).
"""
