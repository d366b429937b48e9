"""python -m pycnn.page: the table of requests that web/PROTOCOL.md lists, from the registry."""
from .protocol import markdown_table

print(markdown_table())
