{ inner = true; }
