"""Kind ``max-wall``: the concurrency budget, its loop-time breakdown, timeline and virtual
clock."""
