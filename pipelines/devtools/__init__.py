"""Developer tools, apart from the stages: the benchmark (``bench``) and notebook execution/rendering
(``notebooks``). No DVC stage imports them."""
