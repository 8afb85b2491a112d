DEBUG = True
SQLALCHEMY_ECHO = False


class BaseConfig:
    DEBUG = False
    SECRET_KEY_FILE = "/run/secrets/key"


class ProductionConfig(BaseConfig):
    DEBUG = True


class DevelopmentConfig(BaseConfig):
    DEBUG = True


class LocalConfig(BaseConfig):
    DEBUG = True


class Toggles:
    """Not a config class: mostly methods."""
    def enabled(self):
        return True

    def other(self):
        DEBUG = True
        return DEBUG
