from celery import Celery

celery = Celery("shop")
