"""One module per command family; each handler takes (Request, lang) and returns a Reply."""
