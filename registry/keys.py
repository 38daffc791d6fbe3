"""Typed application state keys, in one place so every module can import them."""

from __future__ import annotations

from aiohttp import web

from storage.base import PackageStore, RegistryDatabase

from .config import Config
from .packages import Packages

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", PackageStore)
DATABASE = web.AppKey("database", RegistryDatabase)
SECRET = web.AppKey("secret", str)
PACKAGES = web.AppKey("packages", Packages)
