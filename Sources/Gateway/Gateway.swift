// Gateway: under construction
