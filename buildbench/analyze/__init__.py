"""Analysis of results: statistics, metrics, the course comparison, compare and history."""
