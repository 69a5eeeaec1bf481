"""One engine per KEMI language, behind the ``Engine`` interface."""
