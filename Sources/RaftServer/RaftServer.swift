// RaftServer: under construction
