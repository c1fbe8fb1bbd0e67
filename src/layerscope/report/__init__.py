"""Renderers: terminal tables and self-contained HTML pages; they compute nothing."""
