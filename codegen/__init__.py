"""pykemi package."""
