import os


class Config:
    DEBUG = False
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "sqlite:///shop.db")
    RATES_URL = "https://rates.example.com/latest"


class DevelopmentConfig(Config):
    DEBUG = True
    SECRET_KEY = "dev"
