"""End-to-end workflows built from every stage (the offline quickstart)."""
