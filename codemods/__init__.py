"""The codemods shipped with flask-refactor, one module each (installed as
`flask_refactor.codemods`). Shared Flask and Python knowledge lives in `support/`.

A module here that defines a `flask_refactor.codemod.Codemod` subclass with a `name` is
registered automatically; modules whose names start with `_` are helpers."""
