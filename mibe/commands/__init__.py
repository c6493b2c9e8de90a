"""One module per `mibe` subcommand: its arguments (`add`, which registers the subparser and its entry
point) and its entry point (`command(args, argv) -> exit code`). mibe/cli.py lists them and dispatches.

Every command's parser is built at start-up, so a command module imports argparse and light modules
only at its top; what a command needs to run (torch, the run-folder readers, the boards) it imports
inside `command`. This package's __init__ imports nothing: a command module importing
mibe.commands.options must not run the other command modules.
"""
