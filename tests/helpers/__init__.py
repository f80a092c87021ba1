"""Test-only helpers shared by several test folders (importable as ``helpers``: pytest puts
``tests/`` on ``sys.path`` because ``tests/conftest.py`` sits in a folder without ``__init__.py``)."""
