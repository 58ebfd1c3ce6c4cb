"""HTTP caching (Pingora's ``pingora-cache``): placeholder, completed below."""
