"""Detail screens and modals of the console, one module each."""
