"""`bot bench`: the performance benchmark (README "Performance")."""
