"""The one Jinja environment every HTML page of mibe is rendered with (the run viewer, the leaderboard,
the checkpoint-vs-base page).

Templates, stylesheets and scripts are files in mibe/boards/templates/, shipped inside the package.
Autoescape is on: every value a template prints is escaped, so a model name, a label or a protocol
value holding `<script>` shows as text. The stylesheets and scripts are inlined at render time
(`inline`), and so is the viewer's data (`embed`): each page stays one file that works offline.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

STATIC = (".css", ".js")  # the files `inline` may put into a page: ours, never a user's


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mibe.boards", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a name the template expects and Python forgot: an error
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["inline"] = inline
    return env


def inline(name: str) -> Markup:
    """A stylesheet or script shipped beside the templates, as it goes into its <style> or <script>."""
    if not name.endswith(STATIC):
        raise ValueError(f"inline: {name!r} is not a stylesheet or a script")
    source, _, _ = environment().loader.get_source(environment(), name)  # type: ignore[union-attr]
    return Markup(source)


def render(template: str, **context: Any) -> str:
    """One page, as one string ending in a newline."""
    return environment().get_template(template).render(**context).rstrip("\n") + "\n"


def embed(data: Any) -> Markup:
    """JSON safe inside a <script> element: no `<` at all (so neither `</script>` nor `<!--` can end or
    confuse the element), and U+2028/U+2029 escaped for older JavaScript parsers."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
