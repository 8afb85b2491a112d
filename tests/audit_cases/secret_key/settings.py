import os
import uuid

SECRET_KEY = os.environ.get("SECRET_KEY", "change-me")


class Config:
    SECRET_KEY = os.getenv("SECRET_KEY") or "not-so-secret"
    CSRF_KEY = os.getenv("CSRF", str(uuid.uuid4()))


class ProductionConfig(Config):
    SECRET_KEY = "prod-k3y"


class TestingConfig(Config):
    SECRET_KEY = "test"


class EnvConfig(Config):
    SECRET_KEY = os.environ.get("SECRET_KEY", uuid.uuid4().hex)
