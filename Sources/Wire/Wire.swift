// Wire: under construction
