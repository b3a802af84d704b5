import time


def test_clicks_are_counted(app):
    code = app.shorten("https://pytest.org")
    for _ in range(5):
        app.resolve(code)
    time.sleep(0.05)
    assert app.clicks(code) == 5


def test_recent_keeps_the_last_ten(app):
    codes = [app.shorten(f"https://r.example/{i}") for i in range(12)]
    for c in codes:
        app.resolve(c)
    time.sleep(0.05)
    assert app.recent() == list(reversed(codes))[:10]


def test_a_fresh_app_has_no_clicks(app):
    code = app.shorten("https://fresh.example")
    time.sleep(0.05)
    assert app.clicks(code) == 0
    assert app.recent() == []


def test_redis_holds_only_this_tests_keys(app):
    code = app.shorten("https://keys.example")
    app.resolve(code)
    time.sleep(0.05)
    assert app.r.dbsize() == 2


def test_clicks_survive_more_links(app):
    code = app.shorten("https://one.example")
    app.resolve(code)
    app.resolve(code)
    for i in range(5):
        app.shorten(f"https://more.example/{i}")
    time.sleep(0.05)
    assert app.clicks(code) == 2
    assert app.count() == 6
