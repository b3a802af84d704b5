"""A tiny URL shortener: links live in SQLite, click counters and a
recently-visited cache in Redis. Configured the twelve-factor way, from
DATABASE_URL and REDIS_URL (and an optional REDIS_KEY_PREFIX)."""

import hashlib
import os
import sqlite3

import redis


def sqlite_path(url: str) -> str:
    """sqlite:///abs/path.db (or a bare path) -> /abs/path.db"""
    for prefix in ("sqlite://", "sqlite:", "file:"):
        if url.startswith(prefix):
            return url[len(prefix):]
    return url


class Shortener:
    def __init__(self, database_url=None, redis_url=None, key_prefix=None):
        self.db = sqlite3.connect(sqlite_path(database_url or os.environ["DATABASE_URL"]), timeout=5)
        self.r = redis.Redis.from_url(redis_url or os.environ["REDIS_URL"])
        self.prefix = key_prefix if key_prefix is not None else os.environ.get("REDIS_KEY_PREFIX", "")

    def create_schema(self):
        self.db.executescript(
            """
            DROP TABLE IF EXISTS links;
            CREATE TABLE links (code TEXT PRIMARY KEY, url TEXT NOT NULL, owner TEXT NOT NULL);
            """
        )

    def shorten(self, url: str, owner: str = "anon") -> str:
        code = hashlib.sha256(url.encode()).hexdigest()[:7]
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO links VALUES (?, ?, ?)", (code, url, owner))
        return code

    def resolve(self, code: str) -> str | None:
        row = self.db.execute("SELECT url FROM links WHERE code = ?", (code,)).fetchone()
        if row is None:
            return None
        self.r.incr(f"{self.prefix}clicks:{code}")
        self.r.lpush(f"{self.prefix}recent", code)
        self.r.ltrim(f"{self.prefix}recent", 0, 9)
        return row[0]

    def clicks(self, code: str) -> int:
        return int(self.r.get(f"{self.prefix}clicks:{code}") or 0)

    def recent(self) -> list[str]:
        return [c.decode() for c in self.r.lrange(f"{self.prefix}recent", 0, -1)]

    def links_of(self, owner: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT url FROM links WHERE owner = ? ORDER BY url", (owner,))]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM links").fetchone()[0]
