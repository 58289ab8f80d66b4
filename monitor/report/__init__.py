"""The static risk report: a self-contained web site built from the database.

`build_report` (in `build`) reads through `monitor.db`'s read-only report queries, renders
the pages (`pages`, with every feed string escaped by `markup`), draws the charts
(`charts`, matplotlib when installed, tables always) and writes the site atomically
(`writer`). `rebuild` runs it off the daemon's event loop after each scoring round;
`datasette` serves the database with the metadata shipped beside this module.

`plot` draws `monitor chart`'s picture of a theatre's score (matplotlib, optional).

May import: `monitor.config`, `monitor.db` (read-only queries), `monitor.deliver.content`
(names and safe links), `monitor.models`. Must not: write to the database, make a
request, or emit JavaScript.
"""
