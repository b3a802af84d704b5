"""Settings read DATABASE_URL at import, as most Django projects do (through
dj-database-url or by hand, as here): under partest each worker imports
them with its own slot's URL already set."""
import os
from urllib.parse import unquote, urlparse

SECRET_KEY = "partest-example-not-secret"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "shop.orders"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_url = urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/shop"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(_url.path.lstrip("/")),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
}
