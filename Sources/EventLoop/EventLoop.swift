// EventLoop: under construction
