"""Rendering results: number formatting, Markdown/CSV/JSON reports and charts."""
