"""Database layer behind Kamailio's ``db_url`` module parameters (SQLAlchemy Core).

* ``url``: Kamailio-style URLs (mysql://, postgres://, sqlite://) -> SQLAlchemy URLs.
* ``schema``: Kamailio's tables (subscriber, address, trusted, location, acc,
  missed_calls, version) with Kamailio's column names and types.
* ``engine``: one engine per URL and per process, opened lazily (after fork),
  and ``Database``, the handle modules use (errors become ``DbError``).
* ``admin`` / ``cli``: ``kemi db init | add-user | add-address``.

Nothing here is imported by the router unless a module with a db_url is loaded,
so SQLAlchemy stays off the start-up path of configs without a database.
"""
