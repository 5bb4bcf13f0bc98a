"""The console's pages: each a module-level ``async def view(ctx) -> Response``."""
