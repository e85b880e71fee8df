// KVServer: under construction
