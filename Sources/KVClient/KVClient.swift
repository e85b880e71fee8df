// KVClient: under construction
