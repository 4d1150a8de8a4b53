"""``convert hetrec-lastfm``: the original HetRec 2011 Last.fm 2K files (hetrec2011-lastfm-2k).

``--src`` is the folder of the tab-separated files (each with a header line):

- ``user_artists.dat``: userID, artistID, weight (listening count) -> the interactions, with the
  weight as ``rating`` (``--implicit-threshold 1`` keeps every listened artist as a positive);
- ``artists.dat``: id, name, url, pictureURL -> every artistID must be listed here; ``name`` and
  ``pictureURL`` (as ``picture_url``) go to ``DATASET.text.tsv``;
- ``user_taggedartists.dat`` (or ``user_taggedartists-timestamps.dat``): userID, artistID, tagID,
  ... with ``tags.dat``: tagID, tagValue -> per artist, the tag ids used on it, most used first,
  as ``tag_id:token_seq`` in ``DATASET.item``, and their values, comma-separated, as ``tags`` in
  the text table (the layout of lastfm-2k's ``lfm2k_text.tsv``). When the tag assignments are
  absent, artists get no tags and a note says so.

``user_friends.dat`` (the social graph) is not converted: RecBole's general recommenders have no
use for it. ``tags.dat`` is Latin-1; the reader falls back to it for lines that are not UTF-8.
"""

from pathlib import Path

import pandas as pd

from recbole_mm.dataset_tools.convert.common import (
    Source,
    check_known,
    read_delimited,
    to_numbers,
    unique_rows,
)

NAME = "hetrec-lastfm"
HELP = "HetRec 2011 Last.fm 2K: user_artists.dat, artists.dat (+ tags)"
TAG_FILES = ("user_taggedartists.dat", "user_taggedartists-timestamps.dat")


def add_arguments(parser):
    """No options besides the shared ones."""


def load(args):
    """Read the HetRec Last.fm folder ``args.src`` into a Source."""
    folder = Path(args.src)
    listened_path = folder / "user_artists.dat"
    artists_path = folder / "artists.dat"
    listened = read_delimited(listened_path, "\t", required=("userID", "artistID", "weight"))
    artists = read_delimited(artists_path, "\t", required=("id", "name"))
    artists = unique_rows(artists, ["id"], artists_path)
    check_known(listened, "artistID", set(artists["id"]), listened_path, artists_path.name)
    inter = pd.DataFrame(
        {
            "user_id": listened["userID"],
            "item_id": listened["artistID"],
            "rating": to_numbers(listened, "weight", listened_path),
        }
    )
    text = pd.DataFrame({"item_id": artists["id"], "name": artists["name"]})
    if "pictureURL" in artists:
        text["picture_url"] = artists["pictureURL"]
    source = Source(inter=inter, inputs=[listened_path, artists_path], text=text)
    tagged_path = next((folder / name for name in TAG_FILES if (folder / name).is_file()), None)
    if tagged_path is None:
        source.notes.append(f"{folder}: no {' or '.join(TAG_FILES)}; artists get no tags")
    else:
        _add_tags(source, tagged_path, folder / "tags.dat")
    return source


def _add_tags(source, tagged_path, tags_path):
    tagged = read_delimited(tagged_path, "\t", required=("userID", "artistID", "tagID"))
    tags = read_delimited(tags_path, "\t", required=("tagID", "tagValue"))
    tags = unique_rows(tags, ["tagID"], tags_path)
    tags["order"] = to_numbers(tags, "tagID", tags_path, integer=True)
    check_known(tagged, "tagID", set(tags["tagID"]), tagged_path, tags_path.name)
    source.inputs += [tagged_path, tags_path]
    uses = tagged.groupby(["artistID", "tagID"]).size().rename("uses").reset_index()
    uses = uses.merge(tags, on="tagID").sort_values(
        ["artistID", "uses", "order"], ascending=[True, False, True]
    )
    per_artist = uses.groupby("artistID", sort=False)
    tag_ids = per_artist["tagID"].apply(list)
    source.item = pd.DataFrame({"item_id": tag_ids.index, "tag_id": tag_ids.tolist()})
    source.item_types = {"item_id": "token", "tag_id": "token_seq"}
    values = per_artist["tagValue"].apply(",".join).rename("tags")
    source.text = source.text.merge(values, left_on="item_id", right_index=True, how="left")
