"""A GraphQL API gateway for a shooting club: Strawberry on aiohttp over SQLite, PostgreSQL or MySQL."""
