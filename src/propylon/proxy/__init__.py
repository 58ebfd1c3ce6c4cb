"""The HTTP proxy: the ``ProxyHttp`` hooks, the ``Session`` they see, and the engine."""

from .proxy_trait import FailToProxy, ProxyHttp
from .service import HttpProxyApp, http_proxy_service
from .session import Session

__all__ = ["ProxyHttp", "FailToProxy", "Session", "HttpProxyApp", "http_proxy_service"]
