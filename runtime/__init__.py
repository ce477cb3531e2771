"""How a diffc process runs JAX, apart from any model or coder: the persistent compilation cache
(``compilation_cache``) and joining a multi-host run (``distributed``). Every layer that runs JAX
may import it; it imports nothing of diffc."""
