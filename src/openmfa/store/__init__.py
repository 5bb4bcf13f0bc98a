"""The data file: tables, migrations, encryption at rest, and the single write path."""
