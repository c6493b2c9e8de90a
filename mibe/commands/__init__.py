"""One module per `mibe` subcommand: its entry in `mibe --help` (`COMMAND`, an `options.Command`), its
arguments (`add(parser)`) and its entry point (`command(args, argv) -> exit code`). mibe/cli.py lists
the modules, makes each subparser from `COMMAND`, and dispatches to `command`.

Every command's parser is built at start-up, so a command module imports argparse and light modules
only at its top; what a command needs to run (torch, the run-folder readers, the boards) it imports
inside `command`. This package's __init__ imports nothing: a command module importing
mibe.commands.options must not run the other command modules.
"""
