"""Knowledge shared by the codemods: Python imports and Flask's names, hooks and apps."""
