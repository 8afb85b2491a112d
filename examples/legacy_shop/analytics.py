"""Page-view analytics live in their own database, through plain SQLAlchemy."""
import os

from sqlalchemy import Column, DateTime, Integer, String, create_engine, func
from sqlalchemy.orm import declarative_base, scoped_session, sessionmaker

engine = create_engine(os.environ.get("SHOP_ANALYTICS_URL", "sqlite://"))
Session = scoped_session(sessionmaker(bind=engine))  # one session per thread
Base = declarative_base()


class PageView(Base):
    __tablename__ = "page_views"
    id = Column(Integer, primary_key=True)
    path = Column(String(200))
    seen_at = Column(DateTime, server_default=func.now())


Base.metadata.create_all(engine)


def record_view(path):
    Session.add(PageView(path=path))
    Session.commit()
