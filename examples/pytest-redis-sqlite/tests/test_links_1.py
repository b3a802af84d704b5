import time

SITES = ["https://example.com/{}".format(i) for i in range(20)]


def test_shorten_and_resolve(app):
    code = app.shorten("https://python.org")
    time.sleep(0.05)
    assert app.resolve(code) == "https://python.org"
    assert app.count() == 1


def test_many_links_are_counted(app):
    for s in SITES:
        app.shorten(s)
    time.sleep(0.05)
    assert app.count() == len(SITES)


def test_links_by_owner(app):
    app.shorten("https://a.example", owner="ann")
    app.shorten("https://b.example", owner="ann")
    app.shorten("https://c.example", owner="bob")
    time.sleep(0.05)
    assert app.links_of("ann") == ["https://a.example", "https://b.example"]
    assert app.count() == 3


def test_unknown_code_resolves_to_none(app):
    app.shorten("https://rust-lang.org")
    time.sleep(0.05)
    assert app.resolve("nope") is None
    assert app.count() == 1


def test_same_url_same_code(app):
    assert app.shorten("https://x.example") == app.shorten("https://x.example")
    time.sleep(0.05)
    assert app.count() == 1
