"from-search"
