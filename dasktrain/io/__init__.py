"""Reading and writing tables: connections, segments, the binary COPY codec, staging and locks."""
