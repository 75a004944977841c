"""The prompt template library shipped with storyboard (Jinja2 files in this folder)."""
