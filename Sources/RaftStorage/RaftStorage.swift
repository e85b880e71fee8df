// RaftStorage: under construction
