# What cache_stage.py sees of other modules when it is compiled (see setup.py): the
# HttpCache it drives is an extension type, so its hot methods are called directly.

from propylon.cache.http_cache cimport HttpCache
from propylon.proxy.engine cimport HttpProxyEngine
from propylon.proxy.session cimport Session
