"""flask-refactor: codemods that migrate legacy Flask apps, safely and reviewably."""

__version__ = "0.1.0"
