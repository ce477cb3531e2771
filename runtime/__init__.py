"""How a diffc process runs JAX, apart from any model or coder: the persistent compilation cache
(``compilation_cache``). Every layer that runs JAX may import it; it imports nothing of diffc."""
