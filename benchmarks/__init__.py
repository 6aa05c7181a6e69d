"""Programs that measure speed and memory and print JSON (`make bench`)."""
