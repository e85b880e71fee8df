// ServiceSupport: under construction
