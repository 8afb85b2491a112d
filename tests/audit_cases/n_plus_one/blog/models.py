from sqlalchemy.orm import relationship

from blog import db


class Author(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80))
    posts = db.relationship("Post", backref="author")
    # loaded with the authors: no extra query per author
    awards = relationship("Award", lazy="selectin")


class Post(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200))
    author_id = db.Column(db.ForeignKey("author.id"))
    tags = db.relationship("Tag", secondary="post_tags")


class Tag(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    label = db.Column(db.String(40))


class Award(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    author_id = db.Column(db.ForeignKey("author.id"))
