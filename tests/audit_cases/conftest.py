# The trees below are projects for `flask-refactor audit` to read, not tests to run:
# their tests/ folders belong to those projects.
collect_ignore_glob = ["*"]
