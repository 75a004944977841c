"""App profiles: each inference.sh app's schemas (bundled snapshots), the mapping from
storyboard concepts to its input names, and its price rule. Data plus pure functions."""
