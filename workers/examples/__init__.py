"""Small example jobs for the default config: one that works and proves, one that stalls,
one that crashes at start."""
