"""certrotate's front ends: the Textual wizard and the command line."""
