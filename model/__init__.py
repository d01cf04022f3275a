"""rareshock: the world, its rules and the machinery that runs it."""
