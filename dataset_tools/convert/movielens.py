"""``convert movielens``: the GroupLens MovieLens releases ml-100k, ml-1m and ml-10m.

``--src`` is the release folder:

- ml-100k: ``u.data`` (user, item, rating, timestamp; tab-separated), ``u.item`` (``|``-separated:
  id, title, release date, video release date, IMDb URL, one 0/1 flag per genre) with ``u.genre``
  (``name|index``: the flags' genres), ``u.user`` (``id|age|gender|occupation|zip``);
- ml-1m, ml-10m: ``ratings.dat`` (``user::item::rating::timestamp``), ``movies.dat``
  (``id::title::genre|genre``), and for ml-1m ``users.dat`` (``id::gender::age::occupation::zip``,
  age a bucket code).

Output: ``rating`` and ``timestamp`` (float) in the interactions; ``DATASET.item``:
``genres:token_seq`` and ``year:token`` (the title's trailing "(1995)"); ``DATASET.user``:
gender, age, occupation, zip_code (ml-100k's age is a float, ml-1m's a token); the titles go to
``DATASET.text.tsv``. The movie and user files are optional, but when present every rated movie
and every rating user must be in them. ml-10m's ``tags.dat`` is not converted. The files are
Latin-1 or UTF-8; both are read.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from recbole_mm.dataset_tools.atomic import as_token
from recbole_mm.dataset_tools.convert.common import (
    ConversionError,
    Source,
    check_known,
    read_delimited,
    require_file,
    to_numbers,
    unique_rows,
)

NAME = "movielens"
HELP = "MovieLens ml-100k (u.data, u.item, u.user) or ml-1m/ml-10m (ratings.dat, movies.dat, ...)"
RATING_COLUMNS = ["user", "item", "rating", "timestamp"]


def add_arguments(parser):
    """No options besides the shared ones."""


def _years(titles):
    """The trailing "(YYYY)" of each title (str), None where there is none."""
    years = titles.str.extract(r"\((\d{4})\)\s*$", expand=False)
    return years.astype(object).where(years.notna(), None)


def _tokens(values):
    return [token for token in map(as_token, values) if token]


def read_movies(path):
    """MovieLens ``movies.dat`` (``id::title::genre|genre``), one row per movie.

    Returns:
        pandas.DataFrame: item_id (str), title (str), genres (list of tokens), year (str or None).
    """
    movies = read_delimited(path, "::", names=["item_id", "title", "genres"])
    movies = unique_rows(movies, ["item_id"], path)
    return pd.DataFrame(
        {
            "item_id": movies["item_id"],
            "title": movies["title"],
            "genres": [_tokens(genres.split("|")) for genres in movies["genres"]],
            "year": _years(movies["title"]),
        }
    )


def _ratings(path, sep):
    ratings = read_delimited(path, sep, names=RATING_COLUMNS)
    inter = pd.DataFrame(
        {
            "user_id": ratings["user"],
            "item_id": ratings["item"],
            "rating": to_numbers(ratings, "rating", path),
            "timestamp": to_numbers(ratings, "timestamp", path),
        }
    )
    return ratings, inter


def _attach_movies(source, movies, ratings, ratings_path, movies_path):
    check_known(ratings, "item", set(movies["item_id"]), ratings_path, movies_path.name)
    source.inputs.append(movies_path)
    source.item = movies[["item_id", "genres", "year"]]
    source.item_types = {"item_id": "token", "genres": "token_seq", "year": "token"}
    source.text = movies[["item_id", "title"]]


def _attach_users(source, users, ratings, ratings_path, users_path, types):
    users = unique_rows(users, ["user_id"], users_path)
    check_known(ratings, "user", set(users["user_id"]), ratings_path, users_path.name)
    if types["age"] == "float":
        users = users.assign(age=to_numbers(users, "age", users_path))
    source.inputs.append(users_path)
    source.user, source.user_types = users[list(types)], types


def _load_100k(folder):
    ratings_path = folder / "u.data"
    ratings, inter = _ratings(ratings_path, None)
    source = Source(inter=inter, inputs=[ratings_path])
    movies_path = folder / "u.item"
    if movies_path.is_file():
        genre_path = require_file(folder / "u.genre", "genre list (u.genre, read with u.item)")
        genres = read_delimited(genre_path, "|", names=["genre", "index"])
        order = to_numbers(genres, "index", genre_path, integer=True)
        names = [as_token(name) for name in genres["genre"].to_numpy()[np.argsort(order)]]
        flags = [f"flag_{index}" for index in range(len(names))]
        columns = ["item_id", "title", "release_date", "video_release_date", "imdb_url"] + flags
        movies = read_delimited(movies_path, "|", names=columns)
        movies = unique_rows(movies, ["item_id"], movies_path)
        marked = movies[flags].to_numpy() == "1"
        movies = pd.DataFrame(
            {
                "item_id": movies["item_id"],
                "title": movies["title"],
                "genres": [[names[i] for i in np.flatnonzero(row)] for row in marked],
                "year": _years(movies["title"]),
            }
        )
        source.inputs.append(genre_path)
        _attach_movies(source, movies, ratings, ratings_path, movies_path)
    users_path = folder / "u.user"
    if users_path.is_file():
        users = read_delimited(
            users_path, "|", names=["user_id", "age", "gender", "occupation", "zip_code"]
        )
        types = {"user_id": "token", "age": "float"}
        types.update(dict.fromkeys(["gender", "occupation", "zip_code"], "token"))
        _attach_users(source, users, ratings, ratings_path, users_path, types)
    return source


def _load_dat(folder):
    ratings_path = folder / "ratings.dat"
    ratings, inter = _ratings(ratings_path, "::")
    source = Source(inter=inter, inputs=[ratings_path])
    movies_path = folder / "movies.dat"
    if movies_path.is_file():
        _attach_movies(source, read_movies(movies_path), ratings, ratings_path, movies_path)
    users_path = folder / "users.dat"
    if users_path.is_file():
        columns = ["user_id", "gender", "age", "occupation", "zip_code"]
        users = read_delimited(users_path, "::", names=columns)
        types = dict.fromkeys(columns, "token")
        _attach_users(source, users, ratings, ratings_path, users_path, types)
    return source


def load(args):
    """Read the MovieLens release folder ``args.src`` into a Source."""
    folder = Path(args.src)
    if (folder / "u.data").is_file():
        return _load_100k(folder)
    if (folder / "ratings.dat").is_file():
        return _load_dat(folder)
    raise ConversionError(
        f"{folder}: neither u.data (ml-100k) nor ratings.dat (ml-1m, ml-10m) is here; point "
        "--src at the release folder."
    )
