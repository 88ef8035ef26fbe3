"""The golden vector corpus: which cases exist, how they are encoded, and how they are generated."""
