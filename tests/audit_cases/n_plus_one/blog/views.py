from flask import jsonify, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog import app, db
from blog.models import Author, Post


@app.route("/authors")
def authors():
    result = []
    for author in Author.query.order_by(Author.name).all():
        result.append({"name": author.name, "posts": len(author.posts)})
    return jsonify(result)


@app.route("/posts.json")
def posts_json():
    posts = db.session.scalars(select(Post)).all()
    return jsonify([{"title": p.title, "by": p.author.name} for p in posts])


@app.route("/posts")
def posts():
    rows = db.session.execute(select(Post).limit(50)).scalars()
    return render_template("posts.html", posts=rows, title="Posts")


# -- not reported ------------------------------------------------------------------

@app.route("/authors/eager")
def authors_eager():
    authors = db.session.scalars(select(Author).options(selectinload(Author.posts))).all()
    return jsonify([{"name": a.name, "posts": len(a.posts), "awards": len(a.awards)} for a in authors])


@app.route("/titles")
def titles():
    return jsonify([p.title for p in Post.query.all()])


@app.route("/awards")
def awards():
    return jsonify({a.name: len(a.awards) for a in Author.query})


@app.route("/titles.html")
def titles_page():
    return render_template("titles.html", posts=Post.query.all())
