// KVStore: under construction
