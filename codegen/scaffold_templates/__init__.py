"""Jinja2 templates of ``kemi new-module`` (a package so that installs ship them)."""
