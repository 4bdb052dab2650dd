"""Files that ship with the package: the sorter checkpoint, the seed corpus, default heads."""
